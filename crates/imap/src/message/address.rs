//! Address lists (RFC 5322 section 3.4) parsed the way Dovecot parses them
//! for ENVELOPE, broken ones included: what is missing is named
//! `MISSING_MAILBOX` / `MISSING_DOMAIN`, an unclosed `<` makes the domain
//! `SYNTAX_ERROR`, and words that are no address become its display name.

use super::rfc822::Rfc822;

const MISSING_MAILBOX: &[u8] = b"MISSING_MAILBOX";
const MISSING_DOMAIN: &[u8] = b"MISSING_DOMAIN";
const SYNTAX_ERROR: &[u8] = b"SYNTAX_ERROR";
const INVALID_ROUTE: &[u8] = b"INVALID_ROUTE";

/// One entry of an address list. A group starts with an entry whose mailbox
/// is the group's name and whose domain is `None`, and ends with an entry
/// that is all `None` (RFC 3501's group syntax).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Address {
    pub name: Option<Vec<u8>>,
    pub route: Option<Vec<u8>>,
    pub mailbox: Option<Vec<u8>>,
    pub domain: Option<Vec<u8>>,
}

/// The addresses of an address field's value.
pub(crate) fn parse(value: &[u8]) -> Vec<Address> {
    let mut parser = Parser {
        rfc: Rfc822::new(value),
        address: Address::default(),
        list: Vec::new(),
        text: Vec::new(),
    };
    if parser.rfc.skip_lwsp() > 0 {
        parser.address_list();
    }
    parser.list
}

struct Parser<'r> {
    rfc: Rfc822<'r>,
    /// The address being put together.
    address: Address,
    list: Vec<Address>,
    /// Scratch text (a phrase, a local part).
    text: Vec<u8>,
}

impl Parser<'_> {
    fn current(&self) -> u8 {
        self.rfc.current()
    }

    fn add(&mut self) {
        self.list.push(std::mem::take(&mut self.address));
    }

    /// Adds the address with what it lacks named.
    fn add_filled(&mut self) {
        if self.address.mailbox.is_none() {
            self.address.mailbox = Some(MISSING_MAILBOX.to_vec());
        }
        if self.address.domain.as_ref().is_none_or(Vec::is_empty) {
            self.address.domain = Some(MISSING_DOMAIN.to_vec());
        }
        self.add();
    }

    fn local_part(&mut self) -> i32 {
        self.text.clear();
        let ret = if self.current() == b'"' {
            self.rfc.quoted_string(&mut self.text)
        } else {
            self.rfc.dot_atom(&mut self.text)
        };
        if ret < 0 {
            return -1;
        }
        self.address.mailbox = Some(self.text.clone());
        ret
    }

    fn domain(&mut self) -> i32 {
        let mut domain = Vec::new();
        let ret = self.rfc.domain(&mut domain);
        if ret < 0 {
            return -1;
        }
        self.address.domain = Some(domain);
        ret
    }

    /// `"@" domain *("," "@" domain)`: an obsolete source route.
    fn route(&mut self) -> i32 {
        let mut route = Vec::new();
        loop {
            if self.rfc.at_end() {
                return 0;
            }
            if self.current() != b'@' {
                break;
            }
            if !route.is_empty() {
                route.push(b',');
            }
            route.push(b'@');
            let ret = self.rfc.domain(&mut route);
            if ret <= 0 {
                return ret;
            }
            while self.rfc.skip_lwsp() > 0 && self.current() == b',' {
                self.rfc.at += 1;
            }
        }
        self.address.route = Some(route);
        1
    }

    /// `"<" [route ":"] [addr-spec] ">"`, the `<` at the position.
    fn angle_addr(&mut self) -> i32 {
        self.rfc.at += 1;
        if self.rfc.skip_lwsp() <= 0 {
            return -1;
        }
        if self.current() == b'@' {
            if self.route() > 0 && self.current() == b':' {
                self.rfc.at += 1;
            } else {
                self.address.route = Some(INVALID_ROUTE.to_vec());
                if self.rfc.at_end() {
                    return -1;
                }
            }
            if self.rfc.skip_lwsp() <= 0 {
                return -1;
            }
        }
        if self.current() != b'>' {
            if self.local_part() <= 0 {
                return -1;
            }
            if self.current() == b'@' && self.domain() <= 0 {
                return -1;
            }
        }
        if self.current() != b'>' {
            return -1;
        }
        self.rfc.at += 1;
        self.rfc.skip_lwsp()
    }

    /// `[phrase] angle-addr`.
    fn name_addr(&mut self) -> i32 {
        self.text.clear();
        if self.rfc.phrase(&mut self.text) <= 0 || self.current() != b'<' {
            return -1;
        }
        self.address.name = Some(self.text.clone()).filter(|name| !name.is_empty());
        if self.angle_addr() < 0 {
            self.address.domain = Some(SYNTAX_ERROR.to_vec());
        }
        i32::from(!self.rfc.at_end())
    }

    /// `local-part "@" domain`, then a comment that names it; a lone word
    /// followed by more words is a display name without an address.
    fn addr_spec(&mut self) -> i32 {
        self.rfc.last_comment.clear();
        let quoted = self.current() == b'"';
        let mut ret = self.local_part();
        let mut domain_ret = None;
        if ret != 0 && !self.rfc.at_end() && self.current() == b'@' {
            let parsed = self.domain();
            domain_ret = Some(parsed);
            if parsed <= 0 {
                ret = parsed;
            }
        }
        if !self.rfc.last_comment.is_empty() {
            self.address.name = Some(self.rfc.last_comment.clone());
        } else if domain_ret.is_none() {
            self.text.push(b' ');
            let before = self.text.len();
            self.rfc.phrase(&mut self.text);
            if self.text.len() != before {
                self.address.mailbox = None;
                self.address.name = Some(self.text.clone());
            } else if !quoted {
                self.address.domain = Some(Vec::new());
            }
            ret = -1;
        }
        ret
    }

    fn mailbox(&mut self) -> i32 {
        let start = self.rfc.at;
        let mut ret = self.name_addr();
        if ret < 0 {
            self.rfc.at = start;
            self.address = Address::default();
            ret = self.addr_spec();
            if ret < 0
                && self.address.name.is_none()
                && self.address.mailbox.is_some()
                && self.address.domain.is_none()
            {
                self.address.name = self.address.mailbox.take();
            }
        }
        self.add_filled();
        ret
    }

    /// `phrase ":" [mailbox-list] ";"`.
    fn group(&mut self) -> i32 {
        self.text.clear();
        if self.rfc.phrase(&mut self.text) <= 0 || self.current() != b':' {
            return -1;
        }
        self.rfc.at += 1;
        let mut ret = self.rfc.skip_lwsp();
        self.address.mailbox = Some(self.text.clone());
        self.add();
        if ret > 0 && self.current() != b';' {
            loop {
                self.mailbox();
                if self.rfc.at_end() || self.current() != b',' {
                    break;
                }
                self.rfc.at += 1;
                if self.rfc.skip_lwsp() <= 0 {
                    ret = -1;
                    break;
                }
            }
        }
        if ret >= 0 {
            if self.rfc.at_end() || self.current() != b';' {
                ret = -1;
            } else {
                self.rfc.at += 1;
                ret = self.rfc.skip_lwsp();
            }
        }
        self.add();
        i32::from(ret != 0)
    }

    fn address(&mut self) -> i32 {
        let start = self.rfc.at;
        let ret = self.group();
        if ret >= 0 {
            return ret;
        }
        self.rfc.at = start;
        self.address = Address::default();
        self.mailbox()
    }

    fn address_list(&mut self) {
        loop {
            if self.address() == 0 || self.rfc.at_end() || self.current() != b',' {
                return;
            }
            self.rfc.at += 1;
            let ret = self.rfc.skip_lwsp();
            if ret <= 0 {
                if ret < 0 {
                    self.add_filled();
                }
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(mailbox: &str, domain: &str) -> Address {
        Address {
            mailbox: Some(mailbox.into()),
            domain: Some(domain.into()),
            ..Address::default()
        }
    }

    fn named(name: &str, mailbox: &str, domain: &str) -> Address {
        Address {
            name: Some(name.into()),
            ..one(mailbox, domain)
        }
    }

    /// Dovecot 2.3's answers for these inputs.
    #[test]
    fn broken_lists_break_as_in_dovecot() {
        let cases: Vec<(&str, Vec<Address>)> = vec![
            ("", vec![]),
            ("foo", vec![one("foo", "MISSING_DOMAIN")]),
            (
                "bad address",
                vec![named("bad address", "MISSING_MAILBOX", "MISSING_DOMAIN")],
            ),
            (
                "a@b, , c@d",
                vec![
                    one("a", "b"),
                    one("MISSING_MAILBOX", "MISSING_DOMAIN"),
                    one("c", "d"),
                ],
            ),
            (
                "\"never closed <a@b>",
                vec![one("MISSING_MAILBOX", "MISSING_DOMAIN")],
            ),
            ("(open comment a@b", vec![]),
            ("<x@y", vec![one("x", "SYNTAX_ERROR")]),
            (
                "\"x\" <>",
                vec![named("x", "MISSING_MAILBOX", "MISSING_DOMAIN")],
            ),
            (
                "\"\" <a@b>, Joe \"Q\" Smith <j@x>",
                vec![one("a", "b"), named("Joe Q Smith", "j", "x")],
            ),
            ("\"john doe\"@x", vec![one("john doe", "x")]),
            (
                "a@b (c1) (c2), x@y (outer (inner))",
                vec![named("c2", "a", "b"), named("outer (inner)", "x", "y")],
            ),
            (
                "J. R. R. Tolkien <t@x>",
                vec![named("J. R. R. Tolkien", "t", "x")],
            ),
            (
                "<a@b> (comment), name (comment) <c@d>",
                vec![one("a", "b"), named("name", "c", "d")],
            ),
        ];
        for (value, expected) in cases {
            assert_eq!(parse(value.as_bytes()), expected, "{value:?}");
        }
    }

    #[test]
    fn groups_are_marked_at_both_ends() {
        let start = |name: &str| Address {
            mailbox: Some(name.into()),
            ..Address::default()
        };
        assert_eq!(
            parse(b"Group One: ;, Two: a@b,c@d;"),
            vec![
                start("Group One"),
                Address::default(),
                start("Two"),
                one("a", "b"),
                one("c", "d"),
                Address::default()
            ]
        );
        let route = Address {
            route: Some(b"@r1,@r2".to_vec()),
            ..one("a", "b")
        };
        assert_eq!(parse(b"<@r1,@r2:a@b>"), vec![route]);
    }
}
