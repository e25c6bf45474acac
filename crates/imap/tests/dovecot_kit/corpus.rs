//! The corpus both servers get: tricky MIME messages (nested multiparts,
//! encoded words, odd charsets, attachments with long names, message/rfc822
//! parts) and header blocks that break the rules, generated here.

/// The corpus: each message as it travels (CRLF line ends).
pub fn corpus() -> Vec<Vec<u8>> {
    MESSAGES
        .iter()
        .map(|message| message.replace('\n', "\r\n").into_bytes())
        .chain(eight_bit_messages())
        .chain(
            broken_headers()
                .into_iter()
                .map(|header| format!("{header}\r\n\r\nbody\r\n").into_bytes()),
        )
        .collect()
}

/// Header blocks that break the rules, each with a one-line body.
fn broken_headers() -> Vec<String> {
    [
        "From: \"never closed <a@b>\nTo: (open comment a@b\nCc: <x@y\nContent-Type: text/plain; name=\"open",
        "From: foo\nTo: \nCc: \"\" <a@b>, Joe \"Q\" Smith <j@x>\nBcc: \"john doe\"@x, a@b, , c@d\nReply-To: a@b (c1) (c2), x@y (outer (inner))\nSender: J. R. R. Tolkien <t@x>",
        "From: Group One: ;, Two: a@b,c@d;\nTo: <a@b> (comment)\nCc: name (comment) <a@b>\nSubject:  two  spaces  \nIn-Reply-To: ",
        "Subject: a\nSubject: b\nFrom: x@y\nFrom: z@w\nDate: d1\nDate: d2\nTo: <@r1,@r2:a@b>, <@bad a@b>",
        "Content-Type: text",
        "Content-Type: ;",
        "Content-Type: text/",
        "Content-Type:",
        "Content-Type: multipart/mixed",
        "Content-Type: multipart/mixed; boundary=\"\"",
        "Content-Type: image/png\nContent-Type: text/html",
        "Content-Type: text/plain; foo; a=b; =c; d=\"x\"; e==?utf-8?q?x?=",
        "Content-Type: application/x; n*1=b%; n*0*=a%; m*0=x; m*2=z; p*=utf-8''%41",
        "Content-Type: text/plain\nContent-Transfer-Encoding: 8bit garbage",
        "Content-Type: text/plain\nContent-Transfer-Encoding: base64 (c)",
        "Content-Type: text/plain\nContent-Disposition: ; filename=a",
        "Content-Type: text/plain\nContent-Language: en-US (c), (x) de,,fr",
        "Content-Type: text/plain\nContent-ID:  <a>\n  <b>\nContent-Description: \t desc  \nContent-Location:\n http://x",
        "From: a@b\nno colon line\nSubject : spaced name\nX-Empty:\nX-Tab:\tvalue\n continued\nDate: Mon, 30 Nov 2026 25:61:00 +0000",
        " leading continuation\nFrom: lead@x\nMessage-ID: <a@b> (comment)\nIn-Reply-To: <x@y>\n\t<z@w>",
    ]
    .iter()
    .map(|header| header.replace('\n', "\r\n"))
    .collect()
}

/// Messages with bytes that are not UTF-8 text, or raw UTF-8 in headers.
fn eight_bit_messages() -> Vec<Vec<u8>> {
    let mut koi8 = b"From: =?koi8-r?b?8NLJ18XU?= <koi@example.ru>\r\nTo: bob@example.com\r\nSubject: =?koi8-r?b?8NLJ18XU?=\r\nDate: 3 Dec 2026 12:00:00 +0300\r\nContent-Type: text/plain; charset=koi8-r\r\nContent-Transfer-Encoding: 8bit\r\n\r\n".to_vec();
    // "текст" in KOI8-R.
    koi8.extend_from_slice(&[0xd4, 0xc5, 0xcb, 0xd3, 0xd4, b'\r', b'\n']);
    let raw_utf8 = "From: Jürgen <j@example.de>\r\nTo: bob@example.com\r\nSubject: Grüße raw\r\nDate: 4 Dec 2026 08:00:00 +0100\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nRaw UTF-8 body: Grüße\r\n"
        .as_bytes()
        .to_vec();
    let latin1_body = b"From: latin@example.com\r\nSubject: latin-1 body\r\nContent-Type: text/plain; charset=\"ISO-8859-1\"\r\nContent-Transfer-Encoding: 8bit\r\n\r\ncaf\xe9 cr\xe8me\r\n".to_vec();
    vec![koi8, raw_utf8, latin1_body]
}

const MESSAGES: &[&str] = &[
    // 1: the simplest message, no line break at the end.
    "From: Alice <alice@example.com>
To: bob@example.com
Subject: plain
Date: Mon, 30 Nov 2026 10:00:00 +0000
Message-ID: <a1@example.com>

hello",
    // 2: encoded words, groups, a folded subject, quoted-printable Latin-1.
    "From: =?utf-8?q?J=C3=B6rg?= <jorg@example.com>, \"Quoted, Name\" <q@example.com>
To: undisclosed-recipients:;
Cc: Team: a@x.org, B <b@y.org>;, c@z.org
Bcc: hidden@example.com
Subject: =?iso-8859-1?q?caf=E9?= au lait
 folded
Date: Tue, 1 Dec 2026 23:59:59 -0800
In-Reply-To: <x@y>
Content-Type: text/plain; charset=iso-8859-1
Content-Transfer-Encoding: quoted-printable

caf=E9
line2
",
    // 3: an attachment with RFC 2231 names, a message/rfc822 part holding
    // a multipart/alternative, preamble and epilogue.
    "From: a@b
Subject:
Content-Type: multipart/mixed; boundary=\"XX\"

preamble
--XX
Content-Type: text/plain

one
--XX
Content-Type: application/octet-stream; name*0*=utf-8''%E2%82%AC%20a%20very%20long; name*1*=%20name.pdf
Content-Disposition: attachment; filename*0*=utf-8''%E2%82%AC%20a%20very; filename*1=\"long name.pdf\"
Content-Transfer-Encoding: base64
Content-Language: en, fr
Content-Location: http://x/y
Content-ID: <id1>
Content-Description: desc

AAAA
--XX
Content-Type: message/rfc822

From: inner@x
Subject: inner
Content-Type: multipart/alternative; boundary=YY

--YY
Content-Type: text/plain; charset=utf-8; format=flowed

inner text
--YY
Content-Type: text/html

<b>x</b>
--YY--
--XX--
epilogue
",
    // 4: addresses that are not addresses, type names in odd case, base64 text.
    "From: bad address
To: \"x\" <>, <@route:a@b>
Sender: s@x
Content-Type: TEXT/Plain; FORMAT=flowed
Content-Transfer-Encoding: BASE64

aGVsbG8=
",
    // 5: comments as names, blank Reply-To, trailing blanks, MD5, language.
    "From: a@b (Comment Name), \"=?utf-8?b?w6k=?=\" <e@x>, Plain Name <p@x>
To: =?utf-8?q?A_B?= <ab@x>, foo@bar
Reply-To: 
Message-ID:   <spaces@x>  
Content-Type: text/plain; charset=\"utf-8\"; name=\"with \\\"quote\\\"\"
Content-Language: en
Content-Disposition: inline
Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==

x
",
    // 6: a digest, whose parts are messages unless they say otherwise.
    "From: a@b
Content-Type: multipart/digest; boundary=D

--D

From: d1@x
Subject: d1

digest one
--D
Content-Type: text/plain

not message
--D--
",
    // 7: a multipart without a boundary.
    "From: a@b
Content-Type: multipart/mixed

no boundary here
",
    // 8: a nested multipart closed right before the outer boundary, an empty
    // part, and no line break after the last boundary.
    "From: a@b
Content-Type: multipart/mixed; boundary=Q
MIME-Version: 1.0

--Q
Content-Type: multipart/related; boundary=R

--R
Content-Type: image/png
Content-Transfer-Encoding: base64
Content-Disposition: attachment; filename=\"a.png\"; size=4

iVBO
--R--

--Q
--Q--",
    // 9: odd charsets: Windows-1252 quoted-printable, ISO-2022-JP.
    "From: =?iso-2022-jp?b?GyRCRnxLXBsoQg==?= <jp@example.jp>
To: bob@example.com
Subject: =?koi8-r?b?8NLJ18XU?= and more
Date: 2 Dec 2026 09:30:00 +0900
Content-Type: multipart/alternative; boundary=\"=_alt\"

--=_alt
Content-Type: text/plain; charset=windows-1252
Content-Transfer-Encoding: quoted-printable

na=EFve caf=E9
--=_alt
Content-Type: text/plain; charset=ISO-2022-JP
Content-Transfer-Encoding: 7bit

\u{1b}$BF|K\\\u{1b}(B
--=_alt--
",
    // 10: base64 UTF-8 text and an attachment with a long folded RFC 2231 name.
    "From: Gr <gr@example.de>
To: bob@example.com
Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=
Date: Mon, 30 Nov 2026 23:00:00 -1100
Content-Type: multipart/mixed;
 boundary=\"----=_Part_0_1234.5678\"

------=_Part_0_1234.5678
Content-Type: text/plain; charset=UTF-8
Content-Transfer-Encoding: base64

R3LDvMOfZSBhdXMgS8O2bG4K
------=_Part_0_1234.5678
Content-Type: application/pdf;
 name*0*=UTF-8''%E4%B8%80%E4%BB%BD%E9%9D%9E%E5%B8%B8%E9%9D%9E%E5%B8%B8%E9%95%BF;
 name*1*=%E7%9A%84%E6%96%87%E4%BB%B6%E5%90%8D%E7%A7%B0%20with%20a%20very%20long;
 name*2*=%20name%20that%20goes%20on%20and%20on.pdf
Content-Disposition: attachment;
 filename*0*=UTF-8''%E4%B8%80%E4%BB%BD%E9%9D%9E%E5%B8%B8%E9%9D%9E%E5%B8%B8%E9%95%BF;
 filename*1*=%E7%9A%84%E6%96%87%E4%BB%B6%E5%90%8D%E7%A7%B0%20with%20a%20very%20long;
 filename*2*=%20name%20that%20goes%20on%20and%20on.pdf;
 size=12
Content-Transfer-Encoding: base64

JVBERi0xLjQK
------=_Part_0_1234.5678--
",
    // 11: a message that is itself a message/rfc822.
    "From: fwd@example.com
Subject: forwarded whole
Date: 1 Dec 2026 00:00:00 +0000
Content-Type: message/rfc822

From: original@example.com
To: bob@example.com
Subject: the original
Content-Type: multipart/mixed; boundary=orig

--orig
Content-Type: text/plain

original text
--orig
Content-Type: application/zip; name=a.zip
Content-Transfer-Encoding: base64

UEsDBA==
--orig--
",
    // 12: three levels: mixed > alternative > related, and an attached
    // message with its own attachment.
    "From: deep@example.com
To: a@x, b@y, c@z
Subject: deep
Date: Sun, 29 Nov 2026 12:00:00 +0000
Content-Type: multipart/mixed; boundary=L1

--L1
Content-Type: multipart/alternative; boundary=L2

--L2
Content-Type: text/plain

plain alternative
--L2
Content-Type: multipart/related; boundary=L3

--L3
Content-Type: text/html; charset=utf-8

<img src=\"cid:i\">
--L3
Content-Type: image/gif
Content-ID: <i>
Content-Transfer-Encoding: base64

R0lGODlhAQABAAAAACw=
--L3--
--L2--
--L1
Content-Type: message/rfc822; name=\"attached.eml\"
Content-Disposition: attachment; filename=\"attached.eml\"

From: inner2@example.com
Subject: =?utf-8?b?0L/RgNC40LLQtdGC?=
Date: 28 Nov 2026 10:00:00 +0000
Content-Type: multipart/mixed; boundary=IN

--IN
Content-Type: text/plain; charset=utf-8

attached body
--IN
Content-Type: text/csv; name=data.csv
Content-Disposition: attachment; filename=data.csv

a,b
1,2
--IN--

--L1--
",
    // 13: a part without headers, comments in Content-Type, a quoted
    // boundary with odd characters.
    "From: odd@example.com
Subject: odd boundaries
Content-Type: multipart/mixed (comment); boundary=\"b'()+_,-./:=?\"

--b'()+_,-./:=?

implicit text/plain part
--b'()+_,-./:=?
Content-Type: text/plain (plain text); charset=us-ascii (ascii)
Content-Description: =?utf-8?q?descr=C3=AFption?=

second
--b'()+_,-./:=?--
",
    // 14 and 15: boundaries are prefixes: "--abcdef" is a boundary line of "abc", and
    // a nested "out" is cut by the enclosing "outer".
    "Content-Type: multipart/mixed; boundary=abc

--abc
Content-Type: text/plain

one
--abcdef
two
--abc  

three
--abc--
",
    "Content-Type: multipart/mixed; boundary=\"outer\"

--outer
Content-Type: multipart/alternative; boundary=\"out\"

--out

inner1
--outer

second
--outer--
",
    // 16: every address field, several message ids, a folded Message-ID.
    "From: From Person <from@example.com>
Sender: Sender Person <sender@example.com>
Reply-To: Reply <reply@example.com>, other@example.com
To: One <one@example.com>, two@example.com, \"Three, Esq.\" <three@example.com>
Cc: J. Smith <js@example.com>
Bcc: Hidden <hidden2@example.com>
Subject: addresses
Date: Wed, 2 Dec 2026 07:00:00 +0000
In-Reply-To: <one@x> <two@x>
Message-ID:
 <folded@example.com>

addresses
",
];
