//! `GET /api/v1/message/{ID}/part/{PartID}/thumb`: a 180x120 JPEG of an image
//! attachment, for the page's attachment list, as Mailpit makes it: cropped
//! to fill, a smaller image centred on white, transparency on white, and a
//! blank white image for a part that is not an image (or not one sokkel
//! decodes: PNG, JPEG, GIF, WebP).
//!
//! An attachment is hostile input: a few hundred bytes of PNG can claim
//! 100,000 x 100,000 pixels. The header is read first and an image of more
//! than [`MAX_PIXELS`] is refused (422) before anything is allocated for it;
//! decoding runs under [`image::Limits`] of [`MAX_DECODE_BYTES`]; and it runs
//! on the blocking pool, at most [`MAX_THUMBS`] at once (and under a parse
//! permit), so thumbnails together take at most about
//! `MAX_THUMBS * MAX_DECODE_BYTES` (128 MiB) however many the page asks for.
//! Mailpit answers a blank image for an image too large; sokkel says so.
//!
//! Answers carry `Cache-Control: private, no-cache` and a strong `ETag` of the
//! JPEG, and a matching `If-None-Match` is answered 304: message IDs start
//! again at 1 with `--ephemeral` or a new database on the same address, so a
//! browser must ask each time, and asking costs one decode but no transfer.

use std::io::Cursor;
use std::sync::LazyLock;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use image::{DynamicImage, ImageError, ImageReader, Limits, RgbImage};
use sokkel_store::mime;

use crate::api::{MessageRef, blocking, content_disposition};
use crate::error::text;
use crate::{ApiError, AppState};

/// The thumbnail's width, as Mailpit's.
pub const WIDTH: u32 = 180;
/// The thumbnail's height, as Mailpit's.
pub const HEIGHT: u32 = 120;

/// The most pixels an image may claim (16 megapixels: 4000 x 4000), so that
/// its RGBA decoding fits in [`MAX_DECODE_BYTES`].
pub const MAX_PIXELS: u64 = 16_000_000;

/// The most memory decoding one image may take (64 MiB).
pub const MAX_DECODE_BYTES: u64 = 64 << 20;

/// The most thumbnails made at once in the process.
pub const MAX_THUMBS: usize = 2;

static THUMBS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_THUMBS);

/// JPEG quality, as Mailpit's.
const QUALITY: u8 = 70;

/// A message's parts never change, but the message an ID names does (IDs
/// start again with a new store): revalidate every time, by ETag.
const CACHE_CONTROL: &str = "private, no-cache";

/// Why there is no thumbnail.
#[derive(Debug, thiserror::Error)]
enum ThumbError {
    #[error("the image is {0} x {1} pixels; thumbnails are made of images up to 16 megapixels")]
    TooManyPixels(u32, u32),
    #[error("decoding the image would take more than 64 MiB")]
    TooLarge,
}

/// `GET /api/v1/message/{ID}/part/{PartID}/thumb`.
pub(crate) async fn thumb(
    State(state): State<AppState>,
    Path((id, part_id)): Path<(String, String)>,
    request_headers: HeaderMap,
) -> Result<Response, ApiError> {
    let reference = MessageRef::parse(&id)?;
    if part_id.is_empty() || !part_id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::BadRequest(format!(
            "part ID must be a number from the message's Attachments or Inline, not {part_id:?}"
        )));
    }
    let _thumb = THUMBS.acquire().await.map_err(|_| ApiError::ShuttingDown)?;
    let _parsing = state.parse_permit().await?;
    let (file_name, jpeg) = blocking(&state, move |store| {
        let id = reference.resolve(store)?;
        let raw = store
            .raw(id)?
            .ok_or_else(|| ApiError::NotFound(format!("message {id} not found")))?;
        let (info, bytes) = mime::part(&raw, &part_id)
            .ok_or_else(|| ApiError::NotFound(format!("message {id} has no part {part_id}")))?;
        drop(raw);
        Ok((info.file_name, thumbnail(&info.content_type, &bytes)))
    })
    .await?;
    let jpeg = match jpeg {
        Ok(jpeg) => jpeg,
        Err(error) => return Ok(text(StatusCode::UNPROCESSABLE_ENTITY, error.to_string())),
    };
    let etag = crate::ui::etag_of(&jpeg);
    let mut response = if crate::ui::still_fresh(&request_headers, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = jpeg.into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg"));
        response
    };
    let headers = response.headers_mut();
    headers.insert(header::ETAG, etag);
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        content_disposition("inline", &file_name),
    );
    Ok(response)
}

/// The thumbnail of a part of type `content_type`.
fn thumbnail(content_type: &str, bytes: &[u8]) -> Result<Vec<u8>, ThumbError> {
    if !content_type.starts_with("image/") {
        return Ok(BLANK.clone());
    }
    match decode(bytes) {
        Ok(image) => Ok(encode(&fill(&image))),
        Err(DecodeError::Limit(error)) => Err(error),
        // Not an image after all, or a format sokkel does not decode.
        Err(DecodeError::Other(error)) => {
            tracing::debug!(%error, "thumbnail: not a decodable image");
            Ok(BLANK.clone())
        }
    }
}

enum DecodeError {
    Limit(ThumbError),
    Other(ImageError),
}

/// Decodes `bytes` after checking the size its header claims.
fn decode(bytes: &[u8]) -> Result<DynamicImage, DecodeError> {
    let reader = || {
        ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|error| DecodeError::Other(ImageError::IoError(error)))
    };
    let (width, height) = reader()?.into_dimensions().map_err(classify)?;
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(DecodeError::Limit(ThumbError::TooManyPixels(width, height)));
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(width);
    limits.max_image_height = Some(height);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    let mut reader = reader()?;
    reader.limits(limits);
    reader.decode().map_err(classify)
}

fn classify(error: ImageError) -> DecodeError {
    match error {
        ImageError::Limits(_) => DecodeError::Limit(ThumbError::TooLarge),
        other => DecodeError::Other(other),
    }
}

/// `image` cropped to fill [`WIDTH`] x [`HEIGHT`], or, if it is smaller in
/// either direction, fitted and centred; on white either way.
fn fill(image: &DynamicImage) -> RgbImage {
    let filter = image::imageops::FilterType::Triangle;
    let fitted = if image.width() >= WIDTH && image.height() >= HEIGHT {
        image.resize_to_fill(WIDTH, HEIGHT, filter)
    } else if image.width() > WIDTH || image.height() > HEIGHT {
        image.resize(WIDTH, HEIGHT, filter)
    } else {
        image.clone()
    };
    let fitted = fitted.to_rgba8();
    let mut out = RgbImage::from_pixel(WIDTH, HEIGHT, image::Rgb([255, 255, 255]));
    let left = (WIDTH - fitted.width().min(WIDTH)) / 2;
    let top = (HEIGHT - fitted.height().min(HEIGHT)) / 2;
    for (x, y, pixel) in fitted.enumerate_pixels() {
        let [r, g, b, a] = pixel.0;
        let blend = |channel: u8| {
            let alpha = u32::from(a);
            ((u32::from(channel) * alpha + 255 * (255 - alpha)) / 255) as u8
        };
        if x + left < WIDTH && y + top < HEIGHT {
            out.put_pixel(
                x + left,
                y + top,
                image::Rgb([blend(r), blend(g), blend(b)]),
            );
        }
    }
    out
}

fn encode(image: &RgbImage) -> Vec<u8> {
    let mut jpeg = Vec::new();
    let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, QUALITY);
    if let Err(error) = image.write_with_encoder(encoder) {
        // Encoding an in-memory RGB image into a Vec cannot fail short of a bug.
        tracing::error!(%error, "thumbnail: JPEG encoding failed");
        return Vec::new();
    }
    jpeg
}

/// The white thumbnail for parts that are not images.
static BLANK: LazyLock<Vec<u8>> = LazyLock::new(|| {
    encode(&RgbImage::from_pixel(
        WIDTH,
        HEIGHT,
        image::Rgb([255, 255, 255]),
    ))
});
