#!/usr/bin/env python3
"""The other half of search_diff.rs: a corpus, queries, and what they should find.

    python3 search_diff.py OUT_DIR [MESSAGES] [QUERIES]

writes a corpus of generated messages (fixed seed) and queries in sokkel's
search language, and for each query the messages that match it, worked out
here from the raw bytes with Python's `email` package -- independently of
sokkel's MIME parser, index and SQL:

    OUT_DIR/NNNN.eml      the raw message, CRLF line ends
    OUT_DIR/corpus.jsonl  one line per message, in order: {"file", "mail_from",
                          "rcpt_to", "received_ms", "tags", "read", "flagged"}
    OUT_DIR/queries.jsonl one line per query: {"query", "tz", "expected"}, the
                          expected messages as 1-based positions in the corpus

Words are matched as SQLite FTS5's unicode61 tokenizer (remove_diacritics 2)
splits them: decomposed (NFKD), diacritics dropped, case folded, split at
every character that is not a letter or digit; a phrase is consecutive words
of one field. The fields are those sokkel documents in search.rs.
"""

import email
import email.policy
import html
import json
import random
import re
import sys
import unicodedata
from datetime import datetime, timedelta, timezone
from email.header import Header, decode_header, make_header
from email.mime.application import MIMEApplication
from email.mime.image import MIMEImage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formataddr, getaddresses
from zoneinfo import ZoneInfo

SEED = 12
CRLF = email.policy.compat32.clone(linesep="\r\n")
# A letter or digit, as FTS5's unicode61 sees them (`_` is not one). Compiled
# once: the email package compiles a pattern per MIME boundary, which pushes
# any other out of `re`'s cache.
WORD = re.compile(r"[^\W_]+")
DAY_MS = 86_400_000
# 2026-08-01T00:00:00Z: the corpus spans the four months after it, across the
# end of daylight saving time in Europe and America.
START_MS = 1_785_542_400_000
SPAN_MS = 122 * DAY_MS

FIRST = ["Renée", "José", "François", "Zoë", "Ana", "Björn", "Chloé", "Dmitri",
         "Émile", "Grace", "Heidi", "Ivan", "Jürgen", "Kaan", "Léa", "Mónica",
         "Niño", "Olga", "Paul", "Quentin", "Raúl", "Sören", "Tomás", "Ursula"]
LAST = ["Müller", "Núñez", "Dubois", "Çelik", "Kovač", "Smith", "Ångström",
        "Lefèvre", "O'Brien", "García", "Nowak", "Weiler", "Horvath", "Brontë"]
DOMAINS = ["example.com", "corp.test", "shop.test", "mail.example.org",
           "crème.test", "firm.example", "lists.test"]
WORDS = ["invoice", "report", "meeting", "quarterly", "budget", "résumé",
         "holiday", "photos", "contract", "naïve", "café", "deadline",
         "shipping", "order", "refund", "newsletter", "agenda", "minutes",
         "draft", "review", "release", "crème", "brûlée", "façade", "update",
         "security", "password", "welcome", "reminder", "ticket", "pizza",
         "garden", "tennis", "zürich", "münchen", "year", "2026", "q3", "alpha",
         "beta", "gamma", "delta", "omega", "north", "south", "green", "blue"]
ASCII_WORDS = [w for w in WORDS if w.isascii()]
TAGS = ["Urgent", "invoice", "Team-A", "follow_up", "Later", "VIP"]
ZONES = [None, "UTC", "Europe/Amsterdam", "America/New_York", "Asia/Kolkata",
         "+02:00", "-05:30"]


def fold(text):
    """Text as FTS5 unicode61 with remove_diacritics 2 sees it, as words."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    return WORD.findall(text.lower())


# ---------------------------------------------------------------- the corpus


def person(rng):
    first, last = rng.choice(FIRST), rng.choice(LAST)
    local = fold(first)[0] + "." + fold(last)[0]
    if rng.random() < 0.3:
        local += str(rng.randrange(100))
    domain = rng.choice(DOMAINS)
    # An address is ASCII (no SMTPUTF8 here); only names carry diacritics.
    domain = "".join(fold(domain[: domain.index(".")])) + domain[domain.index("."):]
    name = f"{first} {last}" if rng.random() < 0.8 else ""
    return name, f"{local}@{domain}"


def sentence(rng, n):
    return " ".join(rng.choice(WORDS) for _ in range(n))


def header_addresses(pairs):
    return ", ".join(formataddr(pair, charset="utf-8") for pair in pairs)


def make_message(rng, n):
    sender = person(rng)
    to = [person(rng) for _ in range(rng.choice([1, 1, 1, 2, 3]))]
    cc = [person(rng) for _ in range(rng.choice([0, 0, 0, 1, 2]))]
    bcc = [person(rng) for _ in range(rng.choice([0, 0, 0, 0, 1]))]
    text = "\n".join(sentence(rng, rng.randrange(3, 15)) for _ in range(rng.randrange(1, 5)))
    shape = rng.random()
    if shape < 0.5:
        msg = MIMEText(text, "plain", rng.choice(["utf-8", "utf-8", "iso-8859-1"]))
    elif shape < 0.65:
        # Never the first word in <b>: mail-parser 0.11's html_to_text then
        # glues the next word to it ("<p><b>Hello</b> world" gives
        # "Helloworld"), so sokkel's index misses that word. A known
        # difference, reported with issue #12, not what this test is about.
        first, *rest = sentence(rng, 8).split()
        html_words = " ".join([first] + [f"<b>{w}</b>" if rng.random() < 0.2 else w
                                         for w in rest])
        msg = MIMEText(f"<html><body><p>{html_words}</p></body></html>", "html", "utf-8")
    else:
        html_part = MIMEText(f"<p>{html.escape(text)}</p>", "html", "utf-8")
        if rng.random() < 0.4:
            image = MIMEImage(rng.randbytes(rng.randrange(50, 3000)), "png")
            image.add_header("Content-ID", f"<img{n}@corpus.test>")
            image.add_header("Content-Disposition", "inline",
                             filename=f"{rng.choice(['logo', 'banner', 'chart'])}.png")
            html_part = MIMEMultipart("related", _subparts=[html_part, image])
        msg = MIMEMultipart("alternative", _subparts=[MIMEText(text, "plain", "utf-8"), html_part])
    if rng.random() < 0.3:
        size = rng.choice([100, 900, 3_000, 8_000, 24_000])
        attachment = MIMEApplication(rng.randbytes(rng.randrange(size // 2, size)), "pdf")
        name = f"{rng.choice(['report', 'invoice', 'minutes'])}-{rng.choice(WORDS[:10])}.pdf"
        attachment.add_header("Content-Disposition", "attachment", filename=("utf-8", "", name))
        msg = MIMEMultipart("mixed", _subparts=[msg, attachment])
    msg["From"] = header_addresses([sender])
    msg["To"] = header_addresses(to)
    if cc:
        msg["Cc"] = header_addresses(cc)
    if bcc:
        msg["Bcc"] = header_addresses(bcc)
    if rng.random() < 0.25:
        msg["Reply-To"] = header_addresses([person(rng)])
    subject = sentence(rng, rng.randrange(1, 6)).capitalize()
    if rng.random() < 0.3:
        subject += f" #{rng.randrange(1000)}"
    msg["Subject"] = subject if subject.isascii() else Header(subject, "utf-8").encode()
    if rng.random() < 0.95:
        msg["Message-ID"] = f"<{n}.{rng.randrange(10**6)}.{rng.choice(ASCII_WORDS)}@{rng.choice(['mx.example.com', 'host.test'])}>"
    raw = msg.as_bytes(policy=CRLF)

    rcpt_to = [b for _, b in to + cc + bcc]
    if rng.random() < 0.2:
        rcpt_to.append(person(rng)[1])  # a blind recipient no header names
    if rng.random() < 0.2:
        rcpt_to = [r.upper() if rng.random() < 0.5 else r for r in rcpt_to]
    mail_from = sender[1] if rng.random() < 0.7 else f"bounce+{n}@mailer.test"
    tags = sorted(set(rng.choice(TAGS) for _ in range(rng.choice([0, 0, 0, 1, 1, 2]))))
    return raw, {
        "mail_from": mail_from,
        "rcpt_to": rcpt_to,
        "received_ms": START_MS + rng.randrange(SPAN_MS),
        "tags": tags,
        "read": rng.random() < 0.4,
        "flagged": rng.random() < 0.15,
    }


# ------------------------------------------------- what each message offers


def decoded(value):
    """A header value with its RFC 2047 encoded words decoded."""
    return str(make_header(decode_header(value)))


def addresses(msg, name):
    values = msg.get_all(name) or []
    return [(decoded(display), addr) for display, addr in getaddresses(values)
            if display or addr]


def address_text(pairs):
    return " ".join(f"{name} {addr}" for name, addr in pairs)


class Facts:
    """A message as sokkel's search sees it, computed from the raw bytes."""

    def __init__(self, raw, meta):
        msg = email.message_from_bytes(raw)
        frm = addresses(msg, "From")[:1]
        to, cc = addresses(msg, "To"), addresses(msg, "Cc")
        bcc, reply_to = addresses(msg, "Bcc"), addresses(msg, "Reply-To")
        named = {addr.lower() for _, addr in to + cc}
        blind = [r for r in meta["rcpt_to"] if r.lower() not in named]
        texts, htmls, names = [], [], []
        self.attachments = self.inline = 0
        for part in msg.walk():
            if part.is_multipart():
                continue
            disposition = part.get_content_disposition()
            kind = part.get_content_type()
            if disposition is None and kind in ("text/plain", "text/html"):
                charset = part.get_content_charset() or "us-ascii"
                content = part.get_payload(decode=True).decode(charset)
                (texts if kind == "text/plain" else htmls).append(content)
            else:
                if disposition == "inline":
                    self.inline += 1
                else:
                    self.attachments += 1
                if part.get_filename():
                    names.append(part.get_filename())
        if texts:
            body = "\n".join(texts)
        else:
            body = html.unescape(re.sub(r"<[^>]*>", " ", "\n".join(htmls)))
        body += "\n" + "\n".join(names)
        columns = {
            "subject": decoded(msg["Subject"] or ""),
            "sender": address_text(frm) + " " + meta["mail_from"],
            "recipients": " ".join(meta["rcpt_to"]) + " " + address_text(to + cc),
            "body": body,
            "cc": address_text(cc),
            "bcc": address_text(bcc) + " " + " ".join(blind),
            "reply_to": address_text(reply_to),
            "message_id": (msg["Message-ID"] or "").strip().strip("<>"),
        }
        self.words = {column: fold(text) for column, text in columns.items()}
        self.joined = {column: " " + " ".join(words) + " "
                       for column, words in self.words.items()}
        self.size = len(raw)
        self.received_ms = meta["received_ms"]
        self.tags = {tag.lower() for tag in meta["tags"]}
        self.read = meta["read"]
        self.flagged = meta["flagged"]


FIELDS = {
    None: ["subject", "sender", "recipients", "body", "cc", "bcc", "reply_to"],
    "from": ["sender"],
    "to": ["recipients"],
    "cc": ["cc"],
    "bcc": ["bcc"],
    "reply-to": ["reply_to"],
    "addressed": ["sender", "recipients", "cc", "bcc", "reply_to"],
    "subject": ["subject"],
    "message-id": ["message_id"],
}


def has_phrase(joined, phrase, prefix):
    """Whether the words `phrase` come one after another in a column's words,
    `joined` as " w1 w2 ... wn " (so that a match starts and ends on a word);
    with `prefix`, the last word of the phrase may start a longer one."""
    needle = " " + " ".join(phrase) + ("" if prefix else " ")
    return needle in joined


# ------------------------------------------------------------- the queries


class Term:
    """One term of a query: its text in the language and its predicate."""

    def __init__(self, text, test, negated):
        self.text, self.test, self.negated = text, test, negated

    def matches(self, facts):
        return self.test(facts) != self.negated


def text_term(field, value, negated, quoted, open_end):
    """Words to look for. sokkel takes the last word of a query that does not
    end in a space (`open_end`) as a prefix, unless it is quoted, negated,
    shorter than two characters or followed by punctuation."""
    phrase = fold(value)
    typed = WORD.findall(value)
    prefix = (open_end and not quoted and not negated and value[-1:].isalnum()
              and len(typed[-1]) >= 2)
    columns = FIELDS[field]

    def test(facts):
        return any(has_phrase(facts.joined[c], phrase, prefix) for c in columns)

    shown = f'"{value}"' if quoted else value
    text = f"{field}:{shown}" if field else shown
    return Term(text, test, negated)


def day_start_ms(day, tz):
    if tz is None or tz == "UTC":
        zone = timezone.utc
    elif tz[0] in "+-":
        sign = 1 if tz[0] == "+" else -1
        zone = timezone(sign * timedelta(hours=int(tz[1:3]), minutes=int(tz[4:6])))
    else:
        zone = ZoneInfo(tz)
    start = datetime(day.year, day.month, day.day, tzinfo=zone)
    return int(start.timestamp() * 1000)


def size_text(rng):
    return rng.choice([("2048", 2048), ("10k", 10_240), ("1.5k", 1536), ("5KB", 5120),
                       ("50kb", 51_200), ("0.05m", 52_428), ("20 k", 20_480), ("1m", 1 << 20)])


def random_term(rng, corpus, tz, last, negated):
    """A term of a random kind, with values taken from the corpus so that
    queries find something. `last`: it ends a query that does not end in a
    space."""
    kind = rng.random()
    facts = rng.choice(corpus)
    if kind < 0.45:
        field = rng.choice([None, None, None, "from", "to", "cc", "bcc", "reply-to",
                            "addressed", "subject", "message-id"])
        columns = [c for c in FIELDS[field] if facts.words[c]]
        if not columns:
            columns = ["subject"]
            field = "subject"
        words = facts.words[rng.choice(columns)] or ["nothing"]
        start = rng.randrange(len(words))
        length = rng.choice([1, 1, 1, 2, 3])
        picked = words[start:start + length]
        value = " ".join(picked)
        quoted = len(picked) > 1 or rng.random() < 0.1
        if not quoted and rng.random() < 0.3:
            # As a user types an address: punctuation splits it into a phrase.
            value = ".".join(picked)
        if rng.random() < 0.3:
            value = value.upper()
        if last and not quoted and len(picked[-1]) >= 4 and rng.random() < 0.6:
            # Cut the last word short, as while typing.
            value = value[: len(value) - rng.randrange(1, len(picked[-1]) - 2)]
        return text_term(field, value, negated, quoted, last)
    if kind < 0.55:
        tag = rng.choice(TAGS)
        shown = rng.choice([tag, tag.lower(), tag.upper()])
        return Term(f"tag:{shown}", lambda f: tag.lower() in f.tags, negated)
    if kind < 0.7:
        name, test = rng.choice([
            ("is:read", lambda f: f.read), ("is:unread", lambda f: not f.read),
            ("is:flagged", lambda f: f.flagged), ("is:unflagged", lambda f: not f.flagged),
            ("is:tagged", lambda f: bool(f.tags)), ("is:untagged", lambda f: not f.tags),
            ("has:attachment", lambda f: f.attachments > 0),
            ("has:inline", lambda f: f.inline > 0),
        ])
        return Term(name, test, negated)
    if kind < 0.82:
        shown, size = size_text(rng)
        shown = f'"{shown}"' if " " in shown else shown
        if rng.random() < 0.5:
            return Term(f"larger:{shown}", lambda f: f.size > size, negated)
        return Term(f"smaller:{shown}", lambda f: f.size < size, negated)
    received = datetime.fromtimestamp(facts.received_ms / 1000, timezone.utc)
    day = (received + timedelta(days=rng.randrange(-2, 3))).date()
    bound = day_start_ms(day, tz)
    if rng.random() < 0.5:
        return Term(f"before:{day.isoformat()}", lambda f: f.received_ms < bound, negated)
    return Term(f"after:{day.isoformat()}", lambda f: f.received_ms >= bound, negated)


def random_query(rng, corpus):
    tz = rng.choice(ZONES)
    count = rng.choice([1, 1, 2, 2, 3])
    # Most queries end in a space; the others leave their last word open.
    open_end = rng.random() < 0.3
    terms = []
    for index in range(count):
        negated = rng.random() < 0.25
        last = open_end and index == count - 1
        term = random_term(rng, corpus, tz, last, negated)
        if negated:
            term.text = rng.choice("-!") + term.text
        terms.append(term)
    text = " ".join(term.text for term in terms)
    return (text if open_end else text + " "), tz, terms


def main():
    out = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    query_count = int(sys.argv[3]) if len(sys.argv) > 3 else 300
    rng = random.Random(SEED)
    # The email package draws MIME boundaries from the global generator.
    random.seed(SEED)
    corpus = []
    with open(f"{out}/corpus.jsonl", "w", encoding="utf-8") as manifest:
        for n in range(1, count + 1):
            raw, meta = make_message(rng, n)
            name = f"{n:04}.eml"
            with open(f"{out}/{name}", "wb") as file:
                file.write(raw)
            manifest.write(json.dumps({"file": name, **meta}) + "\n")
            corpus.append(Facts(raw, meta))
    with open(f"{out}/queries.jsonl", "w", encoding="utf-8") as queries:
        for _ in range(query_count):
            text, tz, terms = random_query(rng, corpus)
            expected = [n for n, facts in enumerate(corpus, 1)
                        if all(term.matches(facts) for term in terms)]
            queries.write(json.dumps({"query": text, "tz": tz, "expected": expected}) + "\n")


if __name__ == "__main__":
    main()
