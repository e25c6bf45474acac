//! LOGIN and AUTHENTICATE PLAIN: where a plain-text login may happen and what
//! a wrong one costs.

use imap_codec::AuthenticateDataCodec;
use imap_codec::decode::{AuthenticateDataDecodeError, Decoder};
use imap_types::auth::AuthenticateData;
use imap_types::core::Tag;
use imap_types::response::Code;

use super::super::reply;
use super::super::{Login, Request, Step};
use super::{Finish, Job, Session};

impl Session {
    pub(super) fn privacy_required(&mut self, tag: Tag<'static>, out: &mut Vec<u8>) {
        let text = "Plain-text login refused on this connection; use STARTTLS first";
        self.finish_now(
            out,
            Finish::no(tag, Some(reply::code("PRIVACYREQUIRED")), text),
        );
    }

    pub(super) fn check_login(
        &mut self,
        tag: Tag<'static>,
        user: String,
        password: String,
        out: &mut Vec<u8>,
    ) -> Option<Step> {
        if !self.auth_allowed() {
            self.privacy_required(tag, out);
            return None;
        }
        self.job = Some(Job::Login {
            tag,
            user: user.clone(),
        });
        Some(Step::Request(Request::Login(Login { user, password })))
    }

    pub(super) fn auth_plain(
        &mut self,
        tag: Tag<'static>,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Option<Step> {
        let mut parts = data.split(|&b| b == 0);
        let (Some(authzid), Some(user), Some(password), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            self.error(
                out,
                Some(&tag),
                "AUTHENTICATE PLAIN wants authzid NUL user NUL password",
            );
            return None;
        };
        if !authzid.is_empty() && authzid != user {
            self.finish_now(
                out,
                Finish::no(
                    tag,
                    Some(reply::code("AUTHORIZATIONFAILED")),
                    "Cannot act as another user",
                ),
            );
            return None;
        }
        let user = String::from_utf8_lossy(user).into_owned();
        let password = String::from_utf8_lossy(password).into_owned();
        self.check_login(tag, user, password, out)
    }

    pub(super) fn auth_data(&mut self, tag: Tag<'static>, line: &[u8], out: &mut Vec<u8>) {
        match AuthenticateDataCodec::default().decode(line) {
            Ok((_, AuthenticateData::Continue(data))) => {
                let data = data.declassify().to_vec();
                if let Some(Step::Request(request)) = self.auth_plain(tag, &data, out) {
                    self.request = Some(request);
                }
            }
            Ok((_, AuthenticateData::Cancel)) => {
                self.error(out, Some(&tag), "AUTHENTICATE cancelled")
            }
            Err(AuthenticateDataDecodeError::Incomplete | AuthenticateDataDecodeError::Failed) => {
                self.error(out, Some(&tag), "AUTHENTICATE data is not base64");
            }
        }
    }

    pub(super) fn login_answer(&mut self, job: Job, ok: bool, out: &mut Vec<u8>) {
        let Job::Login { tag, user } = job else {
            self.misplaced(job, out);
            return;
        };
        if ok {
            self.user = Some(user);
            let code = Code::Capability(self.capabilities());
            self.finish_now(out, Finish::ok(tag, "Logged in").with_code(code));
            return;
        }
        self.auth_failures += 1;
        let code = reply::code("AUTHENTICATIONFAILED");
        self.finish_now(
            out,
            Finish::no(tag, Some(code), "Wrong user name or password"),
        );
        if self.auth_failures >= self.config.max_auth_failures {
            reply::bye(out, "Too many failed logins");
            self.closed = true;
        }
    }
}
