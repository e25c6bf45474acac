//! Taking messages apart for display.

use sokkel_store::mime::{self, AttachmentInfo};

/// multipart/mixed { multipart/alternative { text/plain (quoted-printable),
/// text/html }, application/pdf (base64), image/png inline with a Content-ID }.
const MESSAGE: &[u8] = b"From: Jane <jane@example.com>\r\n\
To: bob@example.net\r\n\
Subject: =?ISO-8859-1?Q?R=E9sum=E9?= attached\r\n\
X-Folded: first\r\n\x20 second\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"outer\"\r\n\
\r\n\
This is a multi-part message in MIME format.\r\n\
--outer\r\n\
Content-Type: multipart/alternative; boundary=\"inner\"\r\n\
\r\n\
--inner\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
Caf=C3=A9 menu, see the =\r\n\
attachment.\r\n\
--inner\r\n\
Content-Type: text/html; charset=utf-8\r\n\
\r\n\
<p>Caf\xc3\xa9 menu, see the attachment.</p><img src=\"cid:logo@example\">\r\n\
--inner--\r\n\
--outer\r\n\
Content-Type: application/pdf; name=\"menu.pdf\"\r\n\
Content-Disposition: attachment; filename=\"menu.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
JVBERi0xLjQKJcOkw7zDtsOfCjIgMCBvYmoKPDwvTGVuZ3RoIDM+PgpzdHJlYW0K\r\n\
AAECAwQFBgcICQ==\r\n\
--outer\r\n\
Content-Type: image/png\r\n\
Content-Disposition: inline\r\n\
Content-ID: <logo@example>\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
iVBORw0KGgo=\r\n\
--outer--\r\n";

const PDF: &[u8] = b"%PDF-1.4\n%\xc3\xa4\xc3\xbc\xc3\xb6\xc3\x9f\n2 0 obj\n<</Length 3>>\nstream\n\
\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09";

#[test]
fn multipart_alternative_with_attachments() {
    let parsed = mime::parse(MESSAGE);

    let names: Vec<&str> = parsed.headers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "From",
            "To",
            "Subject",
            "X-Folded",
            "MIME-Version",
            "Content-Type"
        ]
    );
    assert_eq!(parsed.headers[0].1, "Jane <jane@example.com>");
    assert_eq!(parsed.headers[2].1, "Résumé attached");
    assert_eq!(parsed.headers[3].1, "first second");

    assert_eq!(
        parsed.text.as_deref(),
        Some("Café menu, see the attachment.")
    );
    let html = parsed.html.as_deref().unwrap();
    assert!(html.starts_with("<p>Café menu"), "{html:?}");

    assert_eq!(parsed.attachments.len(), 2, "{:#?}", parsed.attachments);
    let pdf = &parsed.attachments[0];
    assert_eq!(pdf.file_name, "menu.pdf");
    assert_eq!(pdf.content_type, "application/pdf");
    assert_eq!(pdf.content_id, None);
    assert_eq!(pdf.size, PDF.len());
    assert!(!pdf.inline);
    let logo = &parsed.attachments[1];
    assert_eq!(logo.content_type, "image/png");
    assert_eq!(logo.content_id.as_deref(), Some("logo@example"));
    assert_eq!(logo.file_name, format!("part-{}.png", logo.part_id));
    assert!(logo.inline);

    let (info, bytes): (AttachmentInfo, Vec<u8>) = mime::part(MESSAGE, &pdf.part_id).unwrap();
    assert_eq!(&info, pdf);
    assert_eq!(bytes, PDF);
    let (_, bytes) = mime::part(MESSAGE, &logo.part_id).unwrap();
    assert_eq!(bytes, b"\x89PNG\r\n\x1a\n");

    assert_eq!(mime::part(MESSAGE, "0"), None, "the root is a container");
    assert_eq!(mime::part(MESSAGE, "99"), None);
    assert_eq!(mime::part(MESSAGE, "x"), None);
}

#[test]
fn html_only_has_no_text_and_text_only_has_no_html() {
    let html_only = mime::parse(b"Subject: h\r\nContent-Type: text/html\r\n\r\n<b>hi</b>\r\n");
    assert_eq!(html_only.text, None);
    assert_eq!(html_only.html.as_deref(), Some("<b>hi</b>\r\n"));

    let text_only = mime::parse(b"Subject: t\r\n\r\nhi\r\n");
    assert_eq!(text_only.text.as_deref(), Some("hi\r\n"));
    assert_eq!(text_only.html, None);
    assert!(text_only.attachments.is_empty());
}

#[test]
fn an_attached_message_is_one_part() {
    let raw = b"Subject: fwd\r\n\
Content-Type: multipart/mixed; boundary=b\r\n\
\r\n\
--b\r\n\
Content-Type: text/plain\r\n\
\r\n\
See below.\r\n\
--b\r\n\
Content-Type: message/rfc822\r\n\
\r\n\
Subject: inner\r\n\
\r\n\
Inner body.\r\n\
--b--\r\n";
    let parsed = mime::parse(raw);
    assert_eq!(parsed.text.as_deref(), Some("See below."));
    assert_eq!(parsed.attachments.len(), 1);
    let attached = &parsed.attachments[0];
    assert_eq!(attached.content_type, "message/rfc822");
    assert_eq!(attached.file_name, format!("part-{}.eml", attached.part_id));
    let (_, bytes) = mime::part(raw, &attached.part_id).unwrap();
    assert!(
        bytes.starts_with(b"Subject: inner\r\n"),
        "{:?}",
        String::from_utf8_lossy(&bytes)
    );
}

#[test]
fn garbage_gives_an_empty_message() {
    for raw in [&b""[..], b"\x00\xff\xfe", b"no headers here"] {
        let parsed = mime::parse(raw);
        assert!(parsed.headers.is_empty(), "{raw:?}: {:?}", parsed.headers);
        assert!(parsed.html.is_none(), "{raw:?}");
        assert!(parsed.attachments.is_empty(), "{raw:?}");
    }
}
