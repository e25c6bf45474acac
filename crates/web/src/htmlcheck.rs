//! `GET /api/v1/message/{ID}/html-check`: which HTML and CSS features of a
//! message's HTML are unsupported or partly supported in which mail clients,
//! from the caniemail data (<https://www.caniemail.com>, the npm package
//! `caniemail`, MIT), in Mailpit's `HTMLCheckResponse` shape.
//!
//! The data is vendored in `crates/web/data/caniemail.json` (refreshed by
//! `crates/web/data/refresh-caniemail.sh`), embedded in the binary and parsed
//! once, on the first check, into [`Data`]: only the fields an answer needs.
//!
//! The HTML is read by a small tokenizer ([`Tokens`]): tags with their
//! attributes, the contents of `<style>` elements, and `style=""` attributes,
//! each with its 1-based line. The CSS in both is read by [`scan_css`]: at-rules,
//! selectors (pseudo-classes, pseudo-elements, combinators) and declarations
//! (property names, and values: `display:flex`, functions such as `rgb()` or
//! `calc()`, units, `!important`). Every step goes forward through the input
//! once and keeps per feature only a count and at most [`MAX_LINES`] lines, so
//! a hostile body costs time and memory linear in its size, and the size is
//! bounded by the message size limit. Nothing is fetched: unlike Mailpit,
//! linked stylesheets are not downloaded.
//!
//! Differences from Mailpit, each deliberate:
//! - Styles in `<style>` are not inlined into the elements they match (that
//!   needs a CSS engine); a declaration counts once where it is written.
//! - A support value is read as caniemail means it: `y` is yes, `n` no, `a`
//!   partial, each with its note number if it has one, and `u` (unknown) is
//!   left out of the results and the score (Mailpit counts anything but a bare
//!   `y` or `n` as partial).
//! - The overall score weighs each feature as Mailpit's page does (by how many
//!   of the message's elements use it, pseudo-classes and at-rules at 5 %),
//!   so the API and the page agree; Mailpit's API can answer more than 100 %.
//! - Each warning has `Lines` (sokkel's own): where the feature is used.
//!
//! A message without HTML is a 400, as in Mailpit (whose text is "message does
//! not contain HTML"); 404 is kept for a message that does not exist.

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use axum::extract::{Path, State};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use sokkel_store::mime;

use crate::api::{MessageRef, blocking, json_bytes, json_response};
use crate::{ApiError, AppState};

/// The most lines listed for one warning; the count (`Score.Found`) goes on.
pub const MAX_LINES: usize = 20;

/// The caniemail data, as published (see `crates/web/data/README.md`).
static CANIEMAIL_JSON: &str = include_str!("../data/caniemail.json");

static DATA: LazyLock<Data> = LazyLock::new(|| {
    Data::parse(CANIEMAIL_JSON).expect("the vendored caniemail.json parses (checked by a test)")
});

/// `GET /api/v1/message/{ID}/html-check`.
pub(crate) async fn html_check(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let reference = MessageRef::parse(&id)?;
    let _parsing = state.parse_permit().await?;
    let answer = blocking(&state, move |store| {
        let id = reference.resolve(store)?;
        let raw = store
            .raw(id)?
            .ok_or_else(|| ApiError::NotFound(format!("message {id} not found")))?;
        // Mailpit answers 400 here too.
        let html = mime::parse(&raw).html.ok_or_else(|| {
            ApiError::BadRequest(format!(
                "message {id} has no HTML part, so there is no HTML to check"
            ))
        })?;
        json_bytes(&check(&html))
    })
    .await?;
    json_response(&state, answer)
}

// ---- the data ------------------------------------------------------------------

/// What the answers need of caniemail's data.
#[derive(Debug)]
pub(crate) struct Data {
    features: HashMap<String, Feature>,
    /// Platform key → the nice names of the client families tested on it, sorted.
    platforms: BTreeMap<String, Vec<String>>,
}

#[derive(Debug)]
struct Feature {
    title: String,
    description: String,
    url: String,
    category: String,
    tags: Vec<String>,
    keywords: String,
    notes_by_number: BTreeMap<String, String>,
    results: Vec<ResultJson>,
    score: (f32, f32, f32),
}

#[derive(Deserialize)]
struct RawData {
    nicenames: RawNiceNames,
    data: Vec<RawFeature>,
}

#[derive(Deserialize)]
struct RawNiceNames {
    family: HashMap<String, String>,
    platform: HashMap<String, String>,
}

#[derive(Deserialize)]
struct RawFeature {
    slug: String,
    title: String,
    #[serde(default)]
    description: Option<String>,
    url: String,
    category: String,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    keywords: Option<String>,
    /// family → platform → version → support (`y`, `n`, `a`, `u`, maybe ` #1`).
    stats: BTreeMap<String, BTreeMap<String, BTreeMap<String, String>>>,
    #[serde(default)]
    notes_by_num: Option<BTreeMap<String, String>>,
}

impl Data {
    pub(crate) fn parse(json: &str) -> Result<Data, serde_json::Error> {
        let raw: RawData = serde_json::from_str(json)?;
        let nice = |names: &HashMap<String, String>, key: &str| {
            names.get(key).cloned().unwrap_or_else(|| key.to_string())
        };
        let mut platforms: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut features = HashMap::with_capacity(raw.data.len());
        for feature in raw.data {
            let mut results = Vec::new();
            let (mut yes, mut no, mut partial) = (0_u32, 0_u32, 0_u32);
            for (family, by_platform) in &feature.stats {
                let family_name = nice(&raw.nicenames.family, family);
                for (platform, versions) in by_platform {
                    let families = platforms.entry(platform.clone()).or_default();
                    if !families.contains(&family_name) {
                        families.push(family_name.clone());
                    }
                    for (version, support) in versions {
                        // `a #1 #6`: the support, then its notes.
                        let mut words = support.split_ascii_whitespace();
                        let kind = words.next().unwrap_or_default();
                        let note = words
                            .filter_map(|word| word.strip_prefix('#'))
                            .collect::<Vec<_>>()
                            .join(",");
                        let support = match kind {
                            "y" => {
                                yes += 1;
                                "yes"
                            }
                            "n" => {
                                no += 1;
                                "no"
                            }
                            "a" => {
                                partial += 1;
                                "partial"
                            }
                            // Unknown: neither for nor against.
                            _ => continue,
                        };
                        results.push(ResultJson {
                            name: format!(
                                "{family_name} {} ({version})",
                                nice(&raw.nicenames.platform, platform)
                            ),
                            family: family.clone(),
                            platform: platform.clone(),
                            version: version.clone(),
                            support,
                            note_number: note,
                        });
                    }
                }
            }
            let total = (yes + no + partial).max(1) as f32;
            let score = (
                yes as f32 / total * 100.0,
                partial as f32 / total * 100.0,
                no as f32 / total * 100.0,
            );
            features.insert(
                feature.slug,
                Feature {
                    title: feature.title,
                    description: markdown_to_html(feature.description.as_deref().unwrap_or("")),
                    url: feature.url,
                    category: feature.category,
                    tags: feature.tags,
                    keywords: feature.keywords.unwrap_or_default(),
                    notes_by_number: feature
                        .notes_by_num
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(number, note)| (number, markdown_to_html(&note)))
                        .collect(),
                    results,
                    score,
                },
            );
        }
        for families in platforms.values_mut() {
            families.sort();
        }
        Ok(Data {
            features,
            platforms,
        })
    }
}

/// caniemail's descriptions and notes are Markdown with only `code` spans and
/// `[links](url)`; Mailpit answers them as HTML, and so does this: the text
/// escaped, then those two made tags.
fn markdown_to_html(markdown: &str) -> String {
    let escaped = markdown
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;");
    let mut out = String::with_capacity(escaped.len());
    let mut rest = escaped.as_str();
    while let Some(start) = rest.find(['`', '[']) {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        if rest[start..].starts_with('`') {
            if let Some(end) = after.find('`') {
                out.push_str("<code>");
                out.push_str(&after[..end]);
                out.push_str("</code>");
                rest = &after[end + 1..];
                continue;
            }
        } else if let Some(close) = after.find("](")
            && let Some(end) = after[close + 2..].find(')')
        {
            let text = &after[..close];
            let url = &after[close + 2..close + 2 + end];
            if url.starts_with("https://") || url.starts_with("http://") {
                out.push_str(&format!(
                    "<a href=\"{url}\" target=\"_blank\" rel=\"noopener noreferrer\">{text}</a>"
                ));
                rest = &after[close + 2 + end + 1..];
                continue;
            }
        }
        out.push_str(&rest[start..=start]);
        rest = after;
    }
    out.push_str(rest);
    out
}

// ---- the answer ----------------------------------------------------------------

/// Mailpit's `HTMLCheckResponse`.
#[derive(Debug, Serialize)]
pub(crate) struct CheckJson<'d> {
    #[serde(rename = "Platforms")]
    platforms: &'d BTreeMap<String, Vec<String>>,
    #[serde(rename = "Total")]
    total: TotalJson,
    #[serde(rename = "Warnings")]
    warnings: Vec<WarningJson<'d>>,
}

#[derive(Debug, Serialize)]
struct TotalJson {
    #[serde(rename = "Nodes")]
    nodes: usize,
    #[serde(rename = "Partial")]
    partial: f32,
    #[serde(rename = "Supported")]
    supported: f32,
    #[serde(rename = "Tests")]
    tests: usize,
    #[serde(rename = "Unsupported")]
    unsupported: f32,
}

#[derive(Debug, Serialize)]
struct WarningJson<'d> {
    #[serde(rename = "Slug")]
    slug: &'d str,
    #[serde(rename = "Title")]
    title: &'d str,
    #[serde(rename = "Description")]
    description: &'d str,
    #[serde(rename = "Category")]
    category: &'d str,
    #[serde(rename = "Tags")]
    tags: &'d [String],
    #[serde(rename = "Keywords")]
    keywords: &'d str,
    #[serde(rename = "URL")]
    url: &'d str,
    #[serde(rename = "NotesByNumber")]
    notes_by_number: &'d BTreeMap<String, String>,
    #[serde(rename = "Score")]
    score: ScoreJson,
    #[serde(rename = "Results")]
    results: &'d [ResultJson],
    /// sokkel's own: 1-based lines of the HTML where the feature is used, at
    /// most [`MAX_LINES`].
    #[serde(rename = "Lines")]
    lines: Vec<u32>,
}

#[derive(Debug, Serialize)]
struct ScoreJson {
    #[serde(rename = "Found")]
    found: usize,
    #[serde(rename = "Supported")]
    supported: f32,
    #[serde(rename = "Partial")]
    partial: f32,
    #[serde(rename = "Unsupported")]
    unsupported: f32,
}

#[derive(Debug, Clone, Serialize)]
struct ResultJson {
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "Family")]
    family: String,
    #[serde(rename = "Platform")]
    platform: String,
    #[serde(rename = "Version")]
    version: String,
    #[serde(rename = "Support")]
    support: &'static str,
    /// The note (a key of `NotesByNumber`), or, when caniemail gives several,
    /// their numbers joined by commas (`1,6`).
    #[serde(rename = "NoteNumber")]
    note_number: String,
}

/// The warning for `<script>`, which caniemail does not list: no mail client
/// runs it (Mailpit's wording).
const SCRIPT_SLUG: &str = "html-script";

/// How much a feature counts towards the overall score: the share of the
/// message's elements that use it, at most 1; pseudo-classes, pseudo-elements
/// and at-rules 0.05, since one rule in a `<style>` can apply to any number of
/// elements (as Mailpit's page weighs them).
fn weight(slug: &str, found: usize, nodes: usize) -> f32 {
    if slug.starts_with("css-pseudo-") || slug.starts_with("css-at-") {
        0.05
    } else {
        (found as f32 / nodes.max(1) as f32).min(1.0)
    }
}

/// Checks `html` against the embedded data.
pub(crate) fn check(html: &str) -> CheckJson<'static> {
    check_with(&DATA, html)
}

fn check_with<'d>(data: &'d Data, html: &str) -> CheckJson<'d> {
    let found = detect(html);
    let nodes = found.nodes.max(1);
    static NO_NOTES: BTreeMap<String, String> = BTreeMap::new();
    let mut warnings = Vec::new();
    for (slug, hit) in found.hits {
        if slug == SCRIPT_SLUG {
            warnings.push(WarningJson {
                slug: SCRIPT_SLUG,
                title: "<script> element",
                description: "JavaScript is not supported in any email client.",
                category: "html",
                tags: &[],
                keywords: "",
                url: "",
                notes_by_number: &NO_NOTES,
                score: ScoreJson {
                    found: hit.found,
                    supported: 0.0,
                    partial: 0.0,
                    unsupported: 100.0,
                },
                results: &[],
                lines: hit.lines,
            });
            continue;
        }
        // A slug the data no longer has (after a refresh) is left out.
        let Some((slug, feature)) = data.features.get_key_value(slug) else {
            continue;
        };
        warnings.push(WarningJson {
            slug,
            title: &feature.title,
            description: &feature.description,
            category: &feature.category,
            tags: &feature.tags,
            keywords: &feature.keywords,
            url: &feature.url,
            notes_by_number: &feature.notes_by_number,
            score: ScoreJson {
                found: hit.found,
                supported: feature.score.0,
                partial: feature.score.1,
                unsupported: feature.score.2,
            },
            results: &feature.results,
            lines: hit.lines,
        });
    }
    let (mut partial, mut unsupported) = (0.0_f32, 0.0_f32);
    for warning in &warnings {
        let weight = weight(warning.slug, warning.score.found, nodes);
        partial = partial.max(warning.score.partial * weight);
        unsupported = unsupported.max(warning.score.unsupported * weight);
    }
    // The worst partial and the worst unsupported may come from different
    // features; together they never make more than the whole.
    let partial = partial.min(100.0 - unsupported);
    warnings.sort_by(|a, b| {
        let badness = |w: &WarningJson<'_>| {
            (w.score.unsupported + w.score.partial) * weight(w.slug, w.score.found, nodes)
        };
        badness(b)
            .total_cmp(&badness(a))
            .then_with(|| a.slug.cmp(b.slug))
    });
    CheckJson {
        platforms: &data.platforms,
        total: TotalJson {
            nodes: found.nodes,
            partial,
            supported: 100.0 - partial - unsupported,
            tests: tests_count(),
            unsupported,
        },
        warnings,
    }
}

// ---- what is looked for --------------------------------------------------------

/// Elements, by tag name.
const ELEMENTS: &[(&str, &str)] = &[
    ("object", "html-object"),
    ("embed", "html-object"),
    ("link", "html-link"),
    ("hr", "html-hr"),
    ("dialog", "html-dialog"),
    ("picture", "html-picture"),
    ("svg", "html-svg"),
    ("progress", "html-progress"),
    ("meter", "html-meter"),
    ("audio", "html-audio"),
    ("video", "html-video"),
    ("form", "html-form"),
    ("base", "html-base"),
    ("select", "html-select"),
    ("textarea", "html-textarea"),
    ("map", "html-image-maps"),
    ("style", "html-style"),
    ("body", "html-body"),
    ("marquee", "html-marquee"),
    ("ruby", "html-ruby"),
    ("rt", "html-rt"),
    ("rp", "html-rp"),
    ("bdi", "html-bdi"),
    ("acronym", "html-acronym"),
    ("article", "html-semantics"),
    ("aside", "html-semantics"),
    ("details", "html-semantics"),
    ("figcaption", "html-semantics"),
    ("figure", "html-semantics"),
    ("footer", "html-semantics"),
    ("header", "html-semantics"),
    ("main", "html-semantics"),
    ("mark", "html-semantics"),
    ("nav", "html-semantics"),
    ("section", "html-semantics"),
    ("summary", "html-semantics"),
    ("time", "html-semantics"),
];

/// Attributes, on any element. Accessibility attributes (`role`, `aria-*`,
/// `lang`, `dir`) are not reported: a warning would only discourage them.
const ATTRIBUTES: &[(&str, &str)] = &[
    ("srcset", "html-srcset"),
    ("sizes", "html-srcset"),
    ("required", "html-required"),
    ("loading", "html-loading-attribute"),
    ("popover", "html-popover"),
    ("hidden", "html-hidden"),
    ("background", "html-background"),
    ("bgcolor", "css-background-color"),
    ("width", "html-width"),
    ("height", "html-height"),
    ("cellpadding", "html-cellpadding"),
    ("cellspacing", "html-cellspacing"),
    ("valign", "html-valign"),
    ("align", "html-align"),
    ("target", "html-target"),
    ("usemap", "html-image-maps"),
];

/// `<input type=...>` and `<button type=...>`.
const INPUT_TYPES: &[(&str, &str, &str)] = &[
    ("input", "submit", "html-input-submit"),
    ("input", "reset", "html-input-reset"),
    ("input", "checkbox", "html-input-checkbox"),
    ("input", "radio", "html-input-radio"),
    ("input", "hidden", "html-input-hidden"),
    ("input", "text", "html-input-text"),
    ("button", "submit", "html-button-submit"),
    ("button", "reset", "html-button-reset"),
];

/// Image formats, by the end of an `<img src>` path.
const IMAGE_EXTENSIONS: &[(&str, &str)] = &[
    (".apng", "image-apng"),
    (".avif", "image-avif"),
    (".bmp", "image-bmp"),
    (".gif", "image-gif"),
    (".hdr", "image-hdr"),
    (".heif", "image-heif"),
    (".heic", "image-heif"),
    (".ico", "image-ico"),
    (".mp4", "image-mp4"),
    (".svg", "image-svg"),
    (".tif", "image-tiff"),
    (".tiff", "image-tiff"),
    (".webp", "image-webp"),
];

/// CSS properties (lower case) and their features.
const PROPERTIES: &[(&str, &str)] = &[
    ("accent-color", "css-accent-color"),
    ("align-items", "css-align-items"),
    ("animation", "css-animation"),
    ("animation-name", "css-animation"),
    ("animation-duration", "css-animation"),
    ("aspect-ratio", "css-aspect-ratio"),
    ("backdrop-filter", "css-backdrop-filter"),
    ("background", "css-background"),
    ("background-blend-mode", "css-background-blend-mode"),
    ("background-clip", "css-background-clip"),
    ("background-color", "css-background-color"),
    ("background-image", "css-background-image"),
    ("background-origin", "css-background-origin"),
    ("background-position", "css-background-position"),
    ("background-repeat", "css-background-repeat"),
    ("background-size", "css-background-size"),
    ("block-size", "css-block-inline-size"),
    ("border", "css-border"),
    ("border-top", "css-border"),
    ("border-right", "css-border"),
    ("border-bottom", "css-border"),
    ("border-left", "css-border"),
    ("border-width", "css-border"),
    ("border-style", "css-border"),
    ("border-color", "css-border"),
    ("border-collapse", "css-border-collapse"),
    ("border-image", "css-border-image"),
    ("border-inline", "css-border-inline-block"),
    ("border-block", "css-border-inline-block"),
    ("border-radius", "css-border-radius"),
    ("border-top-left-radius", "css-border-radius"),
    ("border-top-right-radius", "css-border-radius"),
    ("border-bottom-left-radius", "css-border-radius"),
    ("border-bottom-right-radius", "css-border-radius"),
    ("border-start-start-radius", "css-border-radius-logical"),
    ("border-start-end-radius", "css-border-radius-logical"),
    ("border-end-start-radius", "css-border-radius-logical"),
    ("border-end-end-radius", "css-border-radius-logical"),
    ("border-spacing", "css-border-spacing"),
    ("box-shadow", "css-box-shadow"),
    ("box-sizing", "css-box-sizing"),
    ("caption-side", "css-caption-side"),
    ("clear", "css-clear"),
    ("clip-path", "css-clip-path"),
    ("color-scheme", "css-color-scheme"),
    ("column-count", "css-column-count"),
    ("columns", "css-column-layout-properties"),
    ("column-fill", "css-column-layout-properties"),
    ("column-rule", "css-column-layout-properties"),
    ("column-span", "css-column-layout-properties"),
    ("column-width", "css-column-layout-properties"),
    ("cursor", "css-cursor"),
    ("direction", "css-direction"),
    ("display", "css-display"),
    ("empty-cells", "css-empty-cells"),
    ("filter", "css-filter"),
    ("flex-direction", "css-flex-direction"),
    ("flex-wrap", "css-flex-wrap"),
    ("float", "css-float"),
    ("font", "css-font"),
    ("font-kerning", "css-font-kerning"),
    ("font-size-adjust", "css-font-size-adjust"),
    ("font-stretch", "css-font-stretch"),
    ("font-weight", "css-font-weight"),
    ("gap", "css-gap"),
    ("row-gap", "css-gap"),
    ("column-gap", "css-gap"),
    ("grid-template", "css-grid-template"),
    ("grid-template-areas", "css-grid-template"),
    ("grid-template-columns", "css-grid-template"),
    ("grid-template-rows", "css-grid-template"),
    ("height", "css-height"),
    ("hyphenate-character", "css-hyphenate-character"),
    ("hyphenate-limit-chars", "css-hyphenate-limit-chars"),
    ("hyphens", "css-hyphens"),
    ("inline-size", "css-inline-size"),
    ("inset", "css-inset"),
    ("inset-block", "css-inset"),
    ("inset-inline", "css-inset"),
    ("justify-content", "css-justify-content"),
    ("left", "css-left-right-top-bottom"),
    ("right", "css-left-right-top-bottom"),
    ("top", "css-left-right-top-bottom"),
    ("bottom", "css-left-right-top-bottom"),
    ("letter-spacing", "css-letter-spacing"),
    ("line-height", "css-line-height"),
    ("list-style", "css-list-style"),
    ("list-style-image", "css-list-style-image"),
    ("list-style-position", "css-list-style-position"),
    ("list-style-type", "css-list-style-type"),
    ("margin", "css-margin"),
    ("margin-top", "css-margin"),
    ("margin-right", "css-margin"),
    ("margin-bottom", "css-margin"),
    ("margin-left", "css-margin"),
    ("margin-block-start", "css-margin-block-start-end"),
    ("margin-block-end", "css-margin-block-start-end"),
    ("margin-inline", "css-margin-inline-block"),
    ("margin-block", "css-margin-inline-block"),
    ("margin-inline-start", "css-margin-inline-start-end"),
    ("margin-inline-end", "css-margin-inline-start-end"),
    ("mask-image", "css-mask-image"),
    ("max-block-size", "css-max-block-size"),
    ("max-height", "css-max-height"),
    ("max-inline-size", "css-max-inline-size"),
    ("max-width", "css-max-width"),
    ("min-block-size", "css-min-block-size"),
    ("min-height", "css-min-height"),
    ("min-inline-size", "css-min-inline-size"),
    ("min-width", "css-min-width"),
    ("mix-blend-mode", "css-mix-blend-mode"),
    ("object-fit", "css-object-fit"),
    ("object-position", "css-object-position"),
    ("opacity", "css-opacity"),
    ("orphans", "css-orphans"),
    ("outline", "css-outline"),
    ("outline-offset", "css-outline-offset"),
    ("overflow", "css-overflow"),
    ("overflow-x", "css-overflow"),
    ("overflow-y", "css-overflow"),
    ("overflow-wrap", "css-overflow-wrap"),
    ("padding", "css-padding"),
    ("padding-top", "css-padding"),
    ("padding-right", "css-padding"),
    ("padding-bottom", "css-padding"),
    ("padding-left", "css-padding"),
    ("padding-block-start", "css-padding-block-start-end"),
    ("padding-block-end", "css-padding-block-start-end"),
    ("padding-inline", "css-padding-inline-block"),
    ("padding-block", "css-padding-inline-block"),
    ("padding-inline-start", "css-padding-inline-start-end"),
    ("padding-inline-end", "css-padding-inline-start-end"),
    ("position", "css-position"),
    ("resize", "css-resize"),
    ("scroll-snap-type", "css-scroll-snap"),
    ("scroll-snap-align", "css-scroll-snap"),
    ("shape-margin", "css-shape-margin"),
    ("shape-outside", "css-shape-outside"),
    ("tab-size", "css-tab-size"),
    ("table-layout", "css-table-layout"),
    ("text-align", "css-text-align"),
    ("text-align-last", "css-text-align-last"),
    ("text-decoration", "css-text-decoration"),
    ("text-decoration-color", "css-text-decoration-color"),
    ("text-decoration-line", "css-text-decoration-line"),
    ("text-decoration-skip-ink", "css-text-decoration-skip-ink"),
    ("text-decoration-style", "css-text-decoration-style"),
    ("text-decoration-thickness", "css-text-decoration-thickness"),
    ("text-emphasis", "css-text-emphasis"),
    ("text-emphasis-position", "css-text-emphasis-position"),
    ("text-indent", "css-text-indent"),
    ("text-justify", "css-text-justify"),
    ("text-orientation", "css-text-orientation"),
    ("text-overflow", "css-text-overflow"),
    ("text-shadow", "css-text-shadow"),
    ("text-transform", "css-text-transform"),
    ("text-underline-offset", "css-text-underline-offset"),
    ("text-underline-position", "css-text-underline-position"),
    ("text-wrap", "css-text-wrap"),
    ("transform", "css-transform"),
    ("transition", "css-transition"),
    ("user-select", "css-user-select"),
    ("vertical-align", "css-vertical-align"),
    ("visibility", "css-visibility"),
    ("white-space", "css-white-space"),
    ("white-space-collapse", "css-white-space-collapse"),
    ("widows", "css-widows"),
    ("width", "css-width"),
    ("word-break", "css-word-break"),
    ("word-spacing", "css-word-spacing"),
    ("word-wrap", "css-word-wrap"),
    ("writing-mode", "css-writing-mode"),
    ("z-index", "css-z-index"),
];

/// CSS functions in values.
const FUNCTIONS: &[(&str, &str)] = &[
    ("rgb", "css-rgb"),
    ("rgba", "css-rgba"),
    ("calc", "css-unit-calc"),
    ("linear-gradient", "css-linear-gradient"),
    ("repeating-linear-gradient", "css-linear-gradient"),
    ("radial-gradient", "css-radial-gradient"),
    ("repeating-radial-gradient", "css-radial-gradient"),
    ("conic-gradient", "css-conic-gradient"),
    ("clamp", "css-function-clamp"),
    ("min", "css-function-min"),
    ("max", "css-function-max"),
    ("light-dark", "css-function-light-dark"),
    ("lch", "css-modern-color"),
    ("oklch", "css-modern-color"),
    ("lab", "css-modern-color"),
    ("oklab", "css-modern-color"),
    ("var", "css-variables"),
];

/// Keywords in values.
const KEYWORDS: &[(&str, &str)] = &[
    ("initial", "css-unit-initial"),
    ("fit-content", "css-intrinsic-size"),
    ("min-content", "css-intrinsic-size"),
    ("max-content", "css-intrinsic-size"),
    ("system-ui", "css-sytem-ui"),
    ("ui-serif", "css-sytem-ui"),
    ("ui-sans-serif", "css-sytem-ui"),
    ("ui-rounded", "css-sytem-ui"),
    ("ui-monospace", "css-sytem-ui"),
];

/// Units after a number, as Mailpit looks for them (`px`, `%`, `em` are
/// everywhere and supported everywhere).
const UNITS: &[(&str, &str)] = &[
    ("ch", "css-unit-ch"),
    ("rem", "css-unit-rem"),
    ("vh", "css-unit-vh"),
    ("vw", "css-unit-vw"),
    ("vmin", "css-unit-vmin"),
    ("vmax", "css-unit-vmax"),
];

/// At-rules.
const AT_RULES: &[(&str, &str)] = &[
    ("font-face", "css-at-font-face"),
    ("import", "css-at-import"),
    ("keyframes", "css-at-keyframes"),
    ("media", "css-at-media"),
    ("supports", "css-at-supports"),
];

/// Media features in an `@media` prelude.
const MEDIA_FEATURES: &[(&str, &str)] = &[
    ("prefers-color-scheme", "css-at-media-prefers-color-scheme"),
    (
        "prefers-reduced-motion",
        "css-at-media-prefers-reduced-motion",
    ),
    ("orientation", "css-at-media-orientation"),
    ("any-hover", "css-at-media-hover"),
    ("hover", "css-at-media-hover"),
    ("device-pixel-ratio", "css-at-media-device-pixel-ratio"),
];

/// Pseudo-classes and pseudo-elements in selectors (without their colons).
const PSEUDOS: &[(&str, &str)] = &[
    ("active", "css-pseudo-class-active"),
    ("checked", "css-pseudo-class-checked"),
    ("default", "css-pseudo-class-default"),
    ("first-child", "css-pseudo-class-first-child"),
    ("first-of-type", "css-pseudo-class-first-of-type"),
    ("focus", "css-pseudo-class-focus"),
    ("focus-visible", "css-pseudo-class-focus-visible"),
    ("focus-within", "css-pseudo-class-focus-within"),
    ("has", "css-pseudo-class-has"),
    ("hover", "css-pseudo-class-hover"),
    ("lang", "css-pseudo-class-lang"),
    ("last-child", "css-pseudo-class-last-child"),
    ("last-of-type", "css-pseudo-class-last-of-type"),
    ("link", "css-pseudo-class-link"),
    ("not", "css-pseudo-class-not"),
    ("nth-child", "css-pseudo-class-nth-child"),
    ("nth-last-child", "css-pseudo-class-nth-last-child"),
    ("nth-last-of-type", "css-pseudo-class-nth-last-of-type"),
    ("nth-of-type", "css-pseudo-class-nth-of-type"),
    ("only-child", "css-pseudo-class-only-child"),
    ("only-of-type", "css-pseudo-class-only-of-type"),
    ("target", "css-pseudo-class-target"),
    ("visited", "css-pseudo-class-visited"),
    ("after", "css-pseudo-element-after"),
    ("before", "css-pseudo-element-before"),
    ("first-letter", "css-pseudo-element-first-letter"),
    ("first-line", "css-pseudo-element-first-line"),
    ("marker", "css-pseudo-element-marker"),
    ("placeholder", "css-pseudo-element-placeholder"),
];

/// Selector combinators and simple selectors that some clients drop (class,
/// id, type and descendant selectors work nearly everywhere and are not
/// reported).
const SELECTOR_ATTRIBUTE: &str = "css-selector-attribute";
const SELECTOR_ADJACENT: &str = "css-selector-adjacent-sibling";
const SELECTOR_GENERAL: &str = "css-selector-general-sibling";
const SELECTOR_CHILD: &str = "css-selector-child";
const SELECTOR_UNIVERSAL: &str = "css-selector-universal";

const DISPLAY_FLEX: &str = "css-display-flex";
const DISPLAY_GRID: &str = "css-display-grid";
const DISPLAY_NONE: &str = "css-display-none";
const IMPORTANT: &str = "css-important";
const VARIABLES: &str = "css-variables";
const ANCHOR_LINKS: &str = "html-anchor-links";
const MAILTO_LINKS: &str = "html-mailto-links";
const IMAGE_BASE64: &str = "image-base64";

/// Every slug the detector can report (with repeats): the tables' and the
/// single checks'.
fn detector_slugs() -> impl Iterator<Item = &'static str> {
    [
        ELEMENTS,
        ATTRIBUTES,
        IMAGE_EXTENSIONS,
        PROPERTIES,
        FUNCTIONS,
        KEYWORDS,
        UNITS,
        AT_RULES,
        MEDIA_FEATURES,
        PSEUDOS,
    ]
    .into_iter()
    .flat_map(|table| table.iter().map(|&(_, slug)| slug))
    .chain(INPUT_TYPES.iter().map(|&(_, _, slug)| slug))
    .chain([
        SELECTOR_ATTRIBUTE,
        SELECTOR_ADJACENT,
        SELECTOR_GENERAL,
        SELECTOR_CHILD,
        SELECTOR_UNIVERSAL,
        DISPLAY_FLEX,
        DISPLAY_GRID,
        DISPLAY_NONE,
        IMPORTANT,
        VARIABLES,
        ANCHOR_LINKS,
        MAILTO_LINKS,
        IMAGE_BASE64,
        SCRIPT_SLUG,
    ])
}

/// How many features are looked for (Mailpit's `Total.Tests`).
fn tests_count() -> usize {
    static COUNT: LazyLock<usize> = LazyLock::new(|| {
        let mut slugs: Vec<&str> = detector_slugs().collect();
        slugs.sort_unstable();
        slugs.dedup();
        slugs.len()
    });
    *COUNT
}

/// The longest name in the tables; a longer word is no feature.
const MAX_NAME: usize = 32;

type Index = LazyLock<HashMap<&'static str, &'static str>>;

macro_rules! index {
    ($table:expr) => {
        LazyLock::new(|| $table.iter().copied().collect())
    };
}

static BY_ELEMENT: Index = index!(ELEMENTS);
static BY_ATTRIBUTE: Index = index!(ATTRIBUTES);
static BY_PROPERTY: Index = index!(PROPERTIES);
static BY_FUNCTION: Index = index!(FUNCTIONS);
static BY_KEYWORD: Index = index!(KEYWORDS);
static BY_UNIT: Index = index!(UNITS);
static BY_AT_RULE: Index = index!(AT_RULES);
static BY_PSEUDO: Index = index!(PSEUDOS);

/// The slug for `key` (any case) in `index`: a hash look-up, so a body of a
/// million declarations costs a million look-ups, not a scan of the table
/// for each.
fn lookup(index: &Index, key: &str) -> Option<&'static str> {
    if key.is_empty() || key.len() > MAX_NAME {
        return None;
    }
    let mut buffer = [0_u8; MAX_NAME];
    let lower = &mut buffer[..key.len()];
    lower.copy_from_slice(key.as_bytes());
    lower.make_ascii_lowercase();
    index.get(std::str::from_utf8(lower).ok()?).copied()
}

// ---- detection -----------------------------------------------------------------

/// How often a feature is used, and the first lines where.
#[derive(Debug, Default)]
struct Hit {
    found: usize,
    lines: Vec<u32>,
}

#[derive(Debug, Default)]
struct Found {
    hits: HashMap<&'static str, Hit>,
    nodes: usize,
}

impl Found {
    fn add(&mut self, slug: &'static str, line: u32) {
        let hit = self.hits.entry(slug).or_default();
        hit.found += 1;
        if hit.lines.len() < MAX_LINES && hit.lines.last() != Some(&line) {
            hit.lines.push(line);
        }
    }
}

/// Elements not counted as the message's content (`Total.Nodes`).
const NOT_NODES: &[&str] = &["html", "head", "meta", "body", "title"];

fn detect(html: &str) -> Found {
    let mut found = Found::default();
    let mut tokens = Tokens::new(html);
    while let Some(token) = tokens.next_token() {
        match token {
            Token::Start(tag) => element(&mut found, &tag),
            Token::Style { css, line } => scan_css(&mut found, css, line, Context::Rules),
        }
    }
    found
}

fn element(found: &mut Found, tag: &Tag<'_>) {
    let name = tag.name.as_str();
    if !NOT_NODES.contains(&name) {
        found.nodes += 1;
    }
    if let Some(slug) = lookup(&BY_ELEMENT, name) {
        found.add(slug, tag.line);
    }
    if name.len() == 2 && name.starts_with('h') && matches!(name.as_bytes()[1], b'1'..=b'6') {
        found.add("html-h1-h6", tag.line);
    }
    let attribute = |wanted: &str| {
        tag.attributes
            .iter()
            .find(|attribute| attribute.name == wanted)
    };
    if name == "script" {
        let kind = attribute("type").map_or("", |a| a.value.trim());
        if !kind.eq_ignore_ascii_case("application/ld+json")
            && !kind.eq_ignore_ascii_case("application/json")
        {
            found.add(SCRIPT_SLUG, tag.line);
        }
    }
    if name == "input" || name == "button" {
        // An input without a type is a text field.
        let kind = attribute("type").map_or(if name == "input" { "text" } else { "" }, |a| {
            a.value.trim()
        });
        if let Some(&(_, _, slug)) = INPUT_TYPES
            .iter()
            .find(|(element, input, _)| *element == name && input.eq_ignore_ascii_case(kind))
        {
            found.add(slug, tag.line);
        }
    }
    for attribute in &tag.attributes {
        if let Some(slug) = lookup(&BY_ATTRIBUTE, &attribute.name) {
            found.add(slug, attribute.line);
        }
        match (name, attribute.name.as_str()) {
            (_, "style") => scan_css(
                found,
                attribute.value,
                attribute.value_line,
                Context::Declarations,
            ),
            ("a", "href") => {
                let href = attribute.value.trim_start();
                if href.starts_with('#') {
                    found.add(ANCHOR_LINKS, attribute.line);
                } else if href
                    .get(..7)
                    .is_some_and(|scheme| scheme.eq_ignore_ascii_case("mailto:"))
                {
                    found.add(MAILTO_LINKS, attribute.line);
                }
            }
            ("img", "src") => {
                let src = attribute.value.trim();
                if src
                    .get(..11)
                    .is_some_and(|start| start.eq_ignore_ascii_case("data:image/"))
                {
                    found.add(IMAGE_BASE64, attribute.line);
                } else {
                    let path = src.split(['?', '#']).next().unwrap_or_default();
                    if let Some(&(_, slug)) = IMAGE_EXTENSIONS.iter().find(|(extension, _)| {
                        path.len() >= extension.len()
                            && path.is_char_boundary(path.len() - extension.len())
                            && path[path.len() - extension.len()..].eq_ignore_ascii_case(extension)
                    }) {
                        found.add(slug, attribute.line);
                    }
                }
            }
            _ => {}
        }
    }
}

/// Where [`scan_css`] starts: a style sheet, or the declarations of a
/// `style=""` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    Rules,
    Declarations,
}

/// The most nested blocks tracked in a style sheet; deeper braces are read as
/// declarations (the counts stay right for real CSS, and memory stays flat).
const MAX_CSS_DEPTH: usize = 32;

/// Reads CSS once, forward: comments and strings skipped, at-rules and
/// selectors looked at when their `{` (or `;`) comes, declarations when their
/// `;` or `}` comes. `line` is the line `css` starts on.
fn scan_css(found: &mut Found, css: &str, line: u32, start: Context) {
    let bytes = css.as_bytes();
    let mut line = line;
    // What each open block holds; the style sheet itself is the bottom.
    let mut stack: Vec<Context> = vec![start];
    // The text since the last `{`, `}` or `;`, and the line it starts on.
    let mut piece_start = 0;
    let mut piece_line = line;
    let mut piece_started = false;
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        match byte {
            b'\n' => line += 1,
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let end = css[i + 2..]
                    .find("*/")
                    .map_or(bytes.len(), |end| i + 2 + end + 2);
                line += count_lines(&bytes[i..end]);
                i = end;
                continue;
            }
            b'"' | b'\'' => {
                let end = bytes[i + 1..]
                    .iter()
                    .position(|&b| b == byte || b == b'\n')
                    .map_or(bytes.len(), |end| i + 1 + end + 1);
                line += count_lines(&bytes[i..end.min(bytes.len())]);
                i = end;
                continue;
            }
            b'{' | b'}' | b';' => {
                let piece = &css[piece_start..i];
                let context = *stack.last().unwrap_or(&Context::Rules);
                match (byte, context) {
                    (b'{', _) => {
                        let inner = prelude(found, piece, piece_line, context);
                        if stack.len() < MAX_CSS_DEPTH {
                            stack.push(inner);
                        }
                    }
                    (_, Context::Declarations) => declaration(found, piece, piece_line),
                    (b';', Context::Rules) => {
                        // `@import url(...);` and friends.
                        prelude(found, piece, piece_line, context);
                    }
                    _ => {}
                }
                if byte == b'}' && stack.len() > 1 {
                    stack.pop();
                }
                piece_start = i + 1;
                piece_started = false;
                i += 1;
                continue;
            }
            _ => {}
        }
        if !piece_started && !byte.is_ascii_whitespace() {
            piece_started = true;
            piece_line = line;
        }
        i += 1;
    }
    if piece_start < bytes.len() && stack.last() == Some(&Context::Declarations) {
        declaration(found, &css[piece_start..], piece_line);
    }
}

fn count_lines(bytes: &[u8]) -> u32 {
    u32::try_from(bytes.iter().filter(|&&b| b == b'\n').count()).unwrap_or(u32::MAX)
}

/// Looks at what comes before a `{` (or a `;` among rules) and says what the
/// block holds.
fn prelude(found: &mut Found, piece: &str, line: u32, context: Context) -> Context {
    let piece = strip_comments(piece.trim());
    if let Some(at_rule) = piece.strip_prefix('@') {
        let name_end = at_rule
            .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '-'))
            .unwrap_or(at_rule.len());
        let name = &at_rule[..name_end];
        // `@-webkit-keyframes` is `@keyframes`.
        let bare = name
            .strip_prefix('-')
            .and_then(|rest| rest.split_once('-'))
            .map_or(name, |(_, bare)| bare);
        if let Some(slug) = lookup(&BY_AT_RULE, bare) {
            found.add(slug, line);
        }
        if bare.eq_ignore_ascii_case("media") {
            let query = at_rule[name_end..].to_ascii_lowercase();
            for &(feature, slug) in MEDIA_FEATURES {
                if contains_word(&query, feature) {
                    found.add(slug, line);
                    // `any-hover` is not also `hover`.
                    if feature == "any-hover" {
                        break;
                    }
                }
            }
        }
        return match bare.to_ascii_lowercase().as_str() {
            "media" | "supports" | "document" | "layer" | "container" | "keyframes" => {
                Context::Rules
            }
            _ => Context::Declarations,
        };
    }
    if context == Context::Declarations {
        // Nested CSS: a rule inside a rule.
        selector(found, &piece, line);
        return Context::Declarations;
    }
    selector(found, &piece, line);
    Context::Declarations
}

/// `piece` without `/* ... */` (comments inside a selector or declaration).
fn strip_comments(piece: &str) -> std::borrow::Cow<'_, str> {
    if !piece.contains("/*") {
        return piece.into();
    }
    let mut out = String::with_capacity(piece.len());
    let mut rest = piece;
    while let Some(start) = rest.find("/*") {
        out.push_str(&rest[..start]);
        match rest[start + 2..].find("*/") {
            Some(end) => rest = &rest[start + 2 + end + 2..],
            None => rest = "",
        }
    }
    out.push_str(rest);
    out.into()
}

/// Whether `word` is in `text` not as part of a longer name.
fn contains_word(text: &str, word: &str) -> bool {
    let is_name = |b: u8| b.is_ascii_alphanumeric() || b == b'-';
    let bytes = text.as_bytes();
    text.match_indices(word).any(|(at, _)| {
        let before = at.checked_sub(1).map(|i| bytes[i]);
        let after = bytes.get(at + word.len()).copied();
        !before.is_some_and(is_name) && !after.is_some_and(is_name)
    })
}

fn selector(found: &mut Found, selector: &str, line: u32) {
    let bytes = selector.as_bytes();
    let mut i = 0;
    // Keyframe selectors (`from`, `50%`) and the like carry nothing.
    while i < bytes.len() {
        match bytes[i] {
            b'[' => {
                found.add(SELECTOR_ATTRIBUTE, line);
                // Skip to the `]`: an attribute value may hold anything.
                i = selector[i..]
                    .find(']')
                    .map_or(bytes.len(), |end| i + end + 1);
                continue;
            }
            b'+' => found.add(SELECTOR_ADJACENT, line),
            b'~' => found.add(SELECTOR_GENERAL, line),
            b'>' => found.add(SELECTOR_CHILD, line),
            b'*' => found.add(SELECTOR_UNIVERSAL, line),
            b'(' => {
                // `:nth-child(2n+1)`: the argument is no combinator.
                let mut depth = 0_usize;
                let mut j = i;
                while j < bytes.len() {
                    match bytes[j] {
                        b'(' => depth += 1,
                        b')' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    j += 1;
                }
                let inner = &selector[i + 1..j.min(bytes.len())];
                if inner.contains(':') {
                    pseudos(found, inner, line);
                }
                i = j + 1;
                continue;
            }
            b':' => {
                let start = if bytes.get(i + 1) == Some(&b':') {
                    i + 2
                } else {
                    i + 1
                };
                let end = bytes[start..]
                    .iter()
                    .position(|&b| !(b.is_ascii_alphanumeric() || b == b'-'))
                    .map_or(bytes.len(), |end| start + end);
                if let Some(slug) = lookup(&BY_PSEUDO, &selector[start..end]) {
                    found.add(slug, line);
                }
                i = end;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
}

/// Pseudo-classes in the argument of `:not()`, `:has()`, `:is()`.
fn pseudos(found: &mut Found, inner: &str, line: u32) {
    for part in inner.split(':').skip(1) {
        let name_end = part
            .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '-'))
            .unwrap_or(part.len());
        if let Some(slug) = lookup(&BY_PSEUDO, &part[..name_end]) {
            found.add(slug, line);
        }
    }
}

/// One `property: value` (maybe with `!important`).
fn declaration(found: &mut Found, piece: &str, line: u32) {
    let piece = strip_comments(piece);
    let Some((property, value)) = piece.split_once(':') else {
        return;
    };
    let property = property.trim();
    if property.is_empty() {
        return;
    }
    if property.starts_with("--") {
        found.add(VARIABLES, line);
    } else if let Some(slug) = lookup(&BY_PROPERTY, property) {
        found.add(slug, line);
    }
    let mut value = value.trim();
    if let Some(bang) = value.rfind('!')
        && value[bang + 1..].trim().eq_ignore_ascii_case("important")
    {
        found.add(IMPORTANT, line);
        value = value[..bang].trim_end();
    }
    if property.eq_ignore_ascii_case("display") {
        let display = value.to_ascii_lowercase();
        match display.as_str() {
            "flex" | "inline-flex" => found.add(DISPLAY_FLEX, line),
            "grid" | "inline-grid" => found.add(DISPLAY_GRID, line),
            "none" => found.add(DISPLAY_NONE, line),
            _ => {}
        }
    }
    css_value(found, value, line);
}

/// Functions, keywords and units in a value.
fn css_value(found: &mut Found, value: &str, line: u32) {
    let bytes = value.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        if byte.is_ascii_digit()
            || (byte == b'.' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit))
        {
            // A number and its unit.
            let mut j = i;
            while j < bytes.len() && (bytes[j].is_ascii_digit() || bytes[j] == b'.') {
                j += 1;
            }
            let unit_end = bytes[j..]
                .iter()
                .position(|b| !b.is_ascii_alphabetic())
                .map_or(bytes.len(), |end| j + end);
            if let Some(slug) = lookup(&BY_UNIT, &value[j..unit_end]) {
                found.add(slug, line);
            }
            i = unit_end;
        } else if byte.is_ascii_alphabetic() || byte == b'-' {
            let mut j = i;
            while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'-') {
                j += 1;
            }
            let word = &value[i..j];
            if bytes.get(j) == Some(&b'(') {
                if let Some(slug) = lookup(&BY_FUNCTION, word) {
                    found.add(slug, line);
                }
                if word.eq_ignore_ascii_case("url") {
                    // Skip a URL: `url(a.rem)` holds no unit.
                    j = value[j..].find(')').map_or(bytes.len(), |end| j + end + 1);
                }
            } else if let Some(slug) = lookup(&BY_KEYWORD, word) {
                found.add(slug, line);
            }
            i = j.max(i + 1);
        } else {
            i += 1;
        }
    }
}

// ---- the tokenizer -------------------------------------------------------------

/// A start tag, its name in lower case.
#[derive(Debug)]
pub(crate) struct Tag<'h> {
    pub(crate) name: String,
    pub(crate) line: u32,
    pub(crate) attributes: Vec<Attribute<'h>>,
}

#[derive(Debug)]
pub(crate) struct Attribute<'h> {
    /// In lower case.
    pub(crate) name: String,
    /// As written, entities not decoded.
    pub(crate) value: &'h str,
    /// Where the name is.
    pub(crate) line: u32,
    /// Where the value starts (for `style=""` spread over lines).
    pub(crate) value_line: u32,
}

#[derive(Debug)]
pub(crate) enum Token<'h> {
    Start(Tag<'h>),
    /// The contents of a `<style>` element and the line they start on.
    Style {
        css: &'h str,
        line: u32,
    },
}

/// The most attributes of one tag that are looked at.
const MAX_ATTRIBUTES: usize = 64;

/// Elements whose contents are text up to their end tag, not markup.
const RAW_TEXT: &[&str] = &[
    "script", "style", "textarea", "title", "xmp", "iframe", "noembed", "noframes",
];

/// The start tags of an HTML document and the contents of its `<style>`
/// elements, with their lines; everything else (text, end tags, comments,
/// doctypes) is stepped over. Like a browser it never fails: whatever is not
/// a tag is text.
#[derive(Debug)]
pub(crate) struct Tokens<'h> {
    html: &'h str,
    pos: usize,
    line: u32,
    /// The contents of a raw-text element whose start tag was just returned.
    raw_text: Option<&'static str>,
}

impl<'h> Tokens<'h> {
    pub(crate) fn new(html: &'h str) -> Tokens<'h> {
        Tokens {
            html,
            pos: 0,
            line: 1,
            raw_text: None,
        }
    }

    /// Moves to `to`, counting the lines passed.
    fn advance(&mut self, to: usize) {
        let to = to.min(self.html.len());
        self.line = self
            .line
            .saturating_add(count_lines(&self.html.as_bytes()[self.pos..to]));
        self.pos = to;
    }

    pub(crate) fn next_token(&mut self) -> Option<Token<'h>> {
        if let Some(element) = self.raw_text.take() {
            let start = self.pos;
            let line = self.line;
            let end =
                find_end_tag(&self.html[start..], element).map_or(self.html.len(), |at| start + at);
            self.advance(end);
            if element == "style" {
                return Some(Token::Style {
                    css: &self.html[start..end],
                    line,
                });
            }
        }
        let bytes = self.html.as_bytes();
        loop {
            let lt = bytes[self.pos..].iter().position(|&b| b == b'<')?;
            self.advance(self.pos + lt);
            let rest = &bytes[self.pos..];
            if rest.starts_with(b"<!--") {
                let end = self.html[self.pos + 4..]
                    .find("-->")
                    .map_or(self.html.len(), |end| self.pos + 4 + end + 3);
                self.advance(end);
            } else if rest.starts_with(b"</") || rest.starts_with(b"<!") || rest.starts_with(b"<?")
            {
                let end = bytes[self.pos..]
                    .iter()
                    .position(|&b| b == b'>')
                    .map_or(self.html.len(), |end| self.pos + end + 1);
                self.advance(end);
            } else if rest.get(1).is_some_and(u8::is_ascii_alphabetic) {
                let tag = self.start_tag();
                self.raw_text = RAW_TEXT.iter().copied().find(|&name| name == tag.name);
                return Some(Token::Start(tag));
            } else {
                self.advance(self.pos + 1);
            }
        }
    }

    /// Reads `<name attr=value ...>` from `self.pos` (on the `<`).
    fn start_tag(&mut self) -> Tag<'h> {
        let html = self.html;
        let bytes = html.as_bytes();
        let line = self.line;
        let name_start = self.pos + 1;
        let name_end = bytes[name_start..]
            .iter()
            .position(|&b| b.is_ascii_whitespace() || b == b'/' || b == b'>')
            .map_or(bytes.len(), |end| name_start + end);
        let name = html[name_start..name_end].to_ascii_lowercase();
        self.advance(name_end);
        let mut attributes = Vec::new();
        loop {
            // Between attributes: spaces and stray slashes.
            let skip = bytes[self.pos..]
                .iter()
                .position(|&b| !(b.is_ascii_whitespace() || b == b'/'))
                .map_or(bytes.len(), |at| self.pos + at);
            self.advance(skip);
            match bytes.get(self.pos) {
                None => break,
                Some(b'>') => {
                    self.advance(self.pos + 1);
                    break;
                }
                Some(_) => {}
            }
            let attribute_line = self.line;
            let attribute_start = self.pos;
            // A name runs to a space, `/`, `>` or `=` (but may start with `=`).
            let name_end = bytes[attribute_start + 1..]
                .iter()
                .position(|&b| b.is_ascii_whitespace() || b == b'/' || b == b'>' || b == b'=')
                .map_or(bytes.len(), |end| attribute_start + 1 + end);
            let attribute_name = html[attribute_start..name_end].to_ascii_lowercase();
            self.advance(name_end);
            let after_spaces = bytes[self.pos..]
                .iter()
                .position(|b| !b.is_ascii_whitespace())
                .map_or(bytes.len(), |at| self.pos + at);
            let mut value = "";
            let mut value_line = attribute_line;
            if bytes.get(after_spaces) == Some(&b'=') {
                self.advance(after_spaces + 1);
                let value_start = bytes[self.pos..]
                    .iter()
                    .position(|b| !b.is_ascii_whitespace())
                    .map_or(bytes.len(), |at| self.pos + at);
                self.advance(value_start);
                value_line = self.line;
                match bytes.get(value_start) {
                    Some(&quote @ (b'"' | b'\'')) => {
                        let end = bytes[value_start + 1..]
                            .iter()
                            .position(|&b| b == quote)
                            .map_or(bytes.len(), |end| value_start + 1 + end);
                        value = &html[value_start + 1..end];
                        self.advance((end + 1).min(bytes.len()));
                    }
                    Some(_) => {
                        let end = bytes[value_start..]
                            .iter()
                            .position(|&b| b.is_ascii_whitespace() || b == b'>')
                            .map_or(bytes.len(), |end| value_start + end);
                        value = &html[value_start..end];
                        self.advance(end);
                    }
                    None => {}
                }
            }
            // The first of two same-named attributes wins, as in a browser;
            // past MAX_ATTRIBUTES the rest are read over, so a tag of a
            // million attributes is not a million squared comparisons.
            if attributes.len() < MAX_ATTRIBUTES
                && !attributes
                    .iter()
                    .any(|attribute: &Attribute<'_>| attribute.name == attribute_name)
            {
                attributes.push(Attribute {
                    name: attribute_name,
                    value,
                    line: attribute_line,
                    value_line,
                });
            }
        }
        Tag {
            name,
            line,
            attributes,
        }
    }
}

/// Where `</element` (any case) starts in `text`.
fn find_end_tag(text: &str, element: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(at) = bytes[from..].iter().position(|&b| b == b'<') {
        let at = from + at;
        let rest = &bytes[at..];
        if rest.len() >= 2 + element.len()
            && rest[1] == b'/'
            && rest[2..2 + element.len()].eq_ignore_ascii_case(element.as_bytes())
            && rest
                .get(2 + element.len())
                .is_none_or(|&b| b.is_ascii_whitespace() || b == b'>' || b == b'/')
        {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(found: &Found, slug: &str) -> Vec<u32> {
        found
            .hits
            .get(slug)
            .map(|hit| hit.lines.clone())
            .unwrap_or_default()
    }

    #[test]
    fn the_vendored_data_parses_and_names_clients() {
        let data = &*DATA;
        assert!(data.features.len() > 250, "{}", data.features.len());
        let flex = &data.features["css-display-flex"];
        assert_eq!(flex.title, "display:flex");
        assert!(flex.results.iter().any(|r| r.support == "no"));
        assert!(flex.results.iter().all(|r| !r.name.is_empty()));
        let (yes, partial, no) = flex.score;
        assert!((yes + partial + no - 100.0).abs() < 0.01);
        assert!(data.platforms.contains_key("windows"));
        let position = &data.features["css-position"];
        assert!(
            position.results.iter().any(|r| r.note_number == "1,6"),
            "several notes are all kept"
        );
        assert!(data.platforms["windows"].contains(&"Outlook".to_string()));
        // Every slug the detector knows is in the data, so none is silently
        // lost; <script> is sokkel's own warning, which caniemail has no entry for.
        for slug in detector_slugs().filter(|&slug| slug != SCRIPT_SLUG) {
            assert!(data.features.contains_key(slug), "{slug}");
        }
    }

    #[test]
    fn tags_attributes_and_lines() {
        let html = "<!doctype html>\n<html><body>\n<!-- <form> -->\n<FORM action=x>\n<p style=\"color: red;\n  display:flex\">x</p>\n<img\n src='a.webp?x=1' width=3>\n</body></html>";
        let found = detect(html);
        assert_eq!(lines(&found, "html-form"), [4]);
        assert_eq!(lines(&found, "css-display-flex"), [6]);
        assert_eq!(lines(&found, "css-display"), [6]);
        assert_eq!(lines(&found, "image-webp"), [8]);
        assert_eq!(lines(&found, "html-width"), [8]);
        assert_eq!(found.nodes, 3);
    }

    #[test]
    fn style_sheets_selectors_and_values() {
        let html = "<style>\n/* a:hover { } */\na:hover, li:nth-child(2n+1) { color: rgb(1,2,3) !important }\n@media (prefers-color-scheme: dark) {\n  .x > .y { width: 10rem; background-image: url(a.rem) }\n}\n@font-face { font-family: x; }\n</style><div style='--x: 1; position:absolute'></div>";
        let found = detect(html);
        assert_eq!(lines(&found, "css-pseudo-class-hover"), [3]);
        assert_eq!(lines(&found, "css-pseudo-class-nth-child"), [3]);
        assert!(lines(&found, SELECTOR_ADJACENT).is_empty());
        assert_eq!(lines(&found, "css-rgb"), [3]);
        assert_eq!(lines(&found, IMPORTANT), [3]);
        assert_eq!(lines(&found, "css-at-media"), [4]);
        assert_eq!(lines(&found, "css-at-media-prefers-color-scheme"), [4]);
        assert_eq!(lines(&found, SELECTOR_CHILD), [5]);
        assert_eq!(lines(&found, "css-unit-rem"), [5]);
        assert_eq!(found.hits["css-unit-rem"].found, 1);
        assert_eq!(lines(&found, "css-background-image"), [5]);
        assert_eq!(lines(&found, "css-at-font-face"), [7]);
        assert_eq!(lines(&found, VARIABLES), [8]);
        assert_eq!(lines(&found, "css-position"), [8]);
    }

    #[test]
    fn broken_markup_ends_without_panicking() {
        for html in [
            "<",
            "<a",
            "<a b",
            "<a b=",
            "<a b='",
            "<a b=\"x",
            "<style>",
            "<style>a{",
            "<style>a{b:",
            "<!--",
            "<!",
            "</",
            "<p style='a:b;;:;{}}}{{'>",
            "<style>@media{{{{{{",
            "é<é>ü",
            "<a\u{0}=\u{0}>",
            "<img src=\"\u{e9}.gif\">",
        ] {
            let _ = check(html);
        }
    }

    /// Random documents from the pieces markup is made of: no panic, every
    /// line listed is a line of the input, in order, and the scores stay in
    /// range.
    #[test]
    fn random_markup_keeps_the_promises() {
        const PIECES: &[&str] = &[
            "<",
            ">",
            "</",
            "/>",
            "<!--",
            "-->",
            "<!",
            "\n",
            " ",
            "=",
            "\"",
            "'",
            "{",
            "}",
            ";",
            ":",
            "::",
            "(",
            ")",
            "@media",
            "@import",
            "style",
            "<style>",
            "</style>",
            "<script>",
            "</script>",
            "<div",
            "<a",
            "<img",
            "href",
            "src=",
            "style=\"",
            "display:flex",
            "hover",
            "url(",
            "/*",
            "*/",
            "!important",
            "10rem",
            "é",
            "\u{0}",
            "[x]",
            "+",
            ">",
            "*",
            "--v",
            "rgb(",
            "<form",
            "<STYLE>",
            "</STYLE >",
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..2000 {
            let len = (next() % 200) as usize;
            let html: String = (0..len)
                .map(|_| PIECES[(next() % PIECES.len() as u64) as usize])
                .collect();
            let total_lines = html.matches('\n').count() as u32 + 1;
            let check = check(&html);
            let total = &check.total;
            for share in [total.supported, total.partial, total.unsupported] {
                assert!((0.0..=100.0).contains(&share), "{total:?} for {html:?}");
            }
            for warning in &check.warnings {
                assert!(warning.score.found >= warning.lines.len(), "{html:?}");
                assert!(warning.lines.len() <= MAX_LINES);
                assert!(
                    warning.lines.windows(2).all(|pair| pair[0] < pair[1]),
                    "{:?} {html:?}",
                    warning.lines
                );
                assert!(
                    warning
                        .lines
                        .iter()
                        .all(|&line| line >= 1 && line <= total_lines),
                    "{} {:?} of {total_lines} in {html:?}",
                    warning.slug,
                    warning.lines
                );
            }
        }
    }

    #[test]
    fn markdown_is_escaped_with_code_and_links() {
        assert_eq!(
            markdown_to_html(
                "`display:inline-flex` <b> [docs](https://x.example/a) [x](javascript:y)"
            ),
            "<code>display:inline-flex</code> &lt;b&gt; <a href=\"https://x.example/a\" target=\"_blank\" rel=\"noopener noreferrer\">docs</a> [x](javascript:y)"
        );
    }
}
