//! What a user types into the web API: message IDs, `start`/`limit`/`before`,
//! the search language in `query`, and the JSON body of PUT/DELETE
//! `/api/v1/messages`, through `sokkel_web::fuzzing::parse_user_input`.
//!
//! Checks, beyond "does not panic": a mistake is a one-line 400, a page is never
//! over the cap, and every query that parses runs against a real store without a
//! database error (which the API would answer with a 500).
#![no_main]

use std::sync::OnceLock;
use std::time::SystemTime;

use libfuzzer_sys::fuzz_target;
use sokkel_store::{Envelope, ListQuery, NewMessage, Store, StoreError, StoreOptions};

fn store() -> &'static Store {
    static STORE: OnceLock<Store> = OnceLock::new();
    STORE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("sokkel-fuzz-web-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir.join("mail.db"), StoreOptions::default()).unwrap();
        let message = |raw: &str| NewMessage {
            envelope: Envelope {
                mail_from: "rick@example.com".into(),
                rcpt_to: vec!["morty@example.com".into()],
                helo: "h".into(),
                client_addr: "127.0.0.1:1".parse().unwrap(),
                bare_lf: false,
                smtputf8: false,
                tls: None,
                auth_user: None,
            },
            received_at: SystemTime::now(),
            raw: raw.as_bytes().to_vec(),
        };
        store
            .import(vec![
                message("From: Rick <rick@example.com>\r\nTo: morty@example.com\r\nSubject: Portal gun\r\n\r\nwarranty\r\n"),
                message("From: summer@example.com\r\nSubject: \"quoted\" -minus\r\n\r\nh\u{e9}llo wor*d\r\n"),
            ])
            .unwrap();
        store
    })
}

fuzz_target!(|data: &[u8]| {
    if let Some(query) = sokkel_web::fuzzing::parse_user_input(data) {
        let page = ListQuery { limit: 5, offset: 0, before: None };
        match store().search(&query, &page) {
            Ok(_) | Err(StoreError::Busy) => {}
            Err(error) => panic!("{:?} made the store fail: {error}", String::from_utf8_lossy(data)),
        }
    }
});
