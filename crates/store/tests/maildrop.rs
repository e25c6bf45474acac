//! `Store::maildrop`: what a POP3 login sees, in which order, and whose mail.

use std::time::SystemTime;

use sokkel_store::{Deliver, Envelope, MessageId, NewMessage, Store, StoreOptions};
use tempfile::TempDir;

fn message_to(rcpt_to: &[&str], raw: &str) -> NewMessage {
    NewMessage {
        envelope: Envelope {
            mail_from: "sender@example.com".into(),
            rcpt_to: rcpt_to.iter().map(|to| to.to_string()).collect(),
            helo: "client.example.com".into(),
            client_addr: "127.0.0.1:50000".parse().unwrap(),
            bare_lf: false,
            smtputf8: false,
            tls: None,
            auth_user: None,
        },
        received_at: SystemTime::now(),
        raw: raw.as_bytes().to_vec(),
    }
}

async fn store_with(messages: &[(&[&str], &str)]) -> (TempDir, Store, Vec<MessageId>) {
    let dir = TempDir::new().unwrap();
    let store = Store::open(&dir.path().join("mail.db"), StoreOptions::default()).unwrap();
    let mut ids = Vec::new();
    for (rcpt_to, raw) in messages {
        ids.push(store.deliver(message_to(rcpt_to, raw)).await.unwrap());
    }
    (dir, store, ids)
}

#[tokio::test]
async fn every_message_oldest_first_with_its_size() {
    let (_dir, store, ids) = store_with(&[
        (&["a@x.test"], "Subject: one\r\n\r\n1\r\n"),
        (&["b@y.test"], "Subject: two\r\n\r\nbody two\r\n"),
        (&["c@z.test"], "Subject: three\r\n\r\n3\r\n"),
    ])
    .await;
    store.delete(&[ids[1]]).unwrap();
    assert_eq!(
        store.maildrop(None).unwrap(),
        vec![(ids[0], 19), (ids[2], 21)],
        "oldest first, sizes in bytes, deleted messages gone"
    );
}

#[tokio::test]
async fn a_recipient_sees_only_mail_addressed_to_it_whatever_the_case() {
    let (_dir, store, ids) = store_with(&[
        (&["Morty@Example.com"], "Subject: 1\r\n\r\n"),
        (&["rick@example.com"], "Subject: 2\r\n\r\n"),
        (
            &["rick@example.com", "morty@example.com"],
            "Subject: 3\r\n\r\n",
        ),
        (&["morty@other.test"], "Subject: 4\r\n\r\n"),
        (&["xmorty@example.com"], "Subject: 5\r\n\r\n"),
    ])
    .await;
    let uids = |recipient| -> Vec<MessageId> {
        let drop = store.maildrop(Some(recipient)).unwrap();
        drop.into_iter().map(|(id, _)| id).collect()
    };
    assert_eq!(uids("morty@example.com"), vec![ids[0], ids[2]]);
    assert_eq!(uids("MORTY@EXAMPLE.COM"), vec![ids[0], ids[2]]);
    assert_eq!(
        uids("morty"),
        vec![ids[0], ids[2], ids[3]],
        "a login without @ sees its local part at every domain"
    );
    assert_eq!(uids("nobody@example.com"), Vec::<MessageId>::new());
}
