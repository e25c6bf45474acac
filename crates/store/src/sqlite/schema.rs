//! The database schema and its migrations.
//!
//! `PRAGMA user_version` holds how many entries of [`MIGRATIONS`] a file has had
//! applied. Opening a store applies the missing ones, each in its own
//! `BEGIN IMMEDIATE` transaction, so two processes opening a fresh file at once
//! cannot both migrate it. A later change is one more entry at the end; entries
//! already released are never edited.

use rusqlite::{Connection, TransactionBehavior};

use crate::StoreError;

/// Each entry moves the schema from version `index` to `index + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: messages and their bytes. The summary columns are what a list shows,
    // filled at delivery; the bytes live in `raw` so listing never reads bodies.
    // AUTOINCREMENT keeps ids from being reused after deletes (POP3 UIDs).
    // `received_at` is milliseconds since the Unix epoch; JSON columns hold arrays
    // of strings (`rcpt_to`) or of {"name", "address"} objects.
    // The index on `read` serves both counts: SQLite counts rows over the smallest
    // index, and unread messages are a range of it.
    r#"
    CREATE TABLE messages (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        received_at   INTEGER NOT NULL,
        mail_from     TEXT    NOT NULL,
        rcpt_to       TEXT    NOT NULL,
        helo          TEXT    NOT NULL,
        client_addr   TEXT    NOT NULL,
        bare_lf       INTEGER NOT NULL,
        smtputf8      INTEGER NOT NULL,
        tls_version   TEXT,
        tls_cipher    TEXT,
        auth_user     TEXT,
        size          INTEGER NOT NULL,
        parsed        INTEGER NOT NULL,
        subject       TEXT    NOT NULL,
        from_name     TEXT,
        from_addr     TEXT,
        to_list       TEXT    NOT NULL,
        cc_list       TEXT    NOT NULL,
        reply_to_list TEXT    NOT NULL,
        date          TEXT,
        message_id    TEXT,
        attachments   INTEGER NOT NULL,
        snippet       TEXT    NOT NULL,
        read          INTEGER NOT NULL DEFAULT 0
    ) STRICT;
    CREATE INDEX messages_read ON messages(read);
    CREATE TABLE raw (
        id   INTEGER PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
        data BLOB NOT NULL
    ) STRICT;
    "#,
    // 2: full-text search and change tracking.
    // `search` is contentless (content=''): it keeps only the index, not a second
    // copy of the body text; its rowid is the message id. contentless_delete lets
    // a row be deleted by rowid alone, which the trigger does for every deleted
    // message, whichever statement deletes it. Columns: subject; sender (From and
    // the envelope sender); recipients (To, Cc and the envelope recipients); body
    // (text, capped at delivery). unicode61 folds case and diacritics.
    // `store_state` is one row: `change_seq` counts committed changes, so a
    // process can tell another process's changes from its own (changes.rs);
    // messages with ids below `unindexed_below` were stored before this
    // migration and are indexed right after it, in batches (store.rs).
    // `messages_received_at` serves the before:/after: filters.
    r#"
    CREATE VIRTUAL TABLE search USING fts5(
        subject, sender, recipients, body,
        content = '', contentless_delete = 1,
        tokenize = 'unicode61 remove_diacritics 2'
    );
    CREATE TRIGGER messages_unindex AFTER DELETE ON messages BEGIN
        DELETE FROM search WHERE rowid = old.id;
    END;
    CREATE INDEX messages_received_at ON messages(received_at);
    CREATE TABLE store_state (
        id              INTEGER PRIMARY KEY CHECK (id = 1),
        change_seq      INTEGER NOT NULL,
        unindexed_below INTEGER NOT NULL
    ) STRICT;
    INSERT INTO store_state (id, change_seq, unindexed_below)
        VALUES (1, 0, (SELECT coalesce(max(id), 0) + 1 FROM messages));
    "#,
    // 3: messages the writer has stored but not yet indexed. The writer indexes
    // them in batches of their own, after answering the waiting clients, so the
    // tokenizer does not sit between a message and its 250; an id stays here
    // until its index row is committed, so nothing is left unindexed by a crash.
    r#"
    CREATE TABLE unindexed (id INTEGER PRIMARY KEY) STRICT;
    CREATE TRIGGER messages_unqueue AFTER DELETE ON messages BEGIN
        DELETE FROM unindexed WHERE id = old.id;
    END;
    "#,
    // 4: how many messages there are and how many are unread, kept by triggers so
    // that every page of the web API (which shows both) reads one row instead of
    // counting 100,000. The row is the one each commit updates already.
    r#"
    ALTER TABLE store_state ADD COLUMN total INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE store_state ADD COLUMN unread INTEGER NOT NULL DEFAULT 0;
    UPDATE store_state SET
        total = (SELECT count(*) FROM messages),
        unread = (SELECT count(*) FROM messages WHERE read = 0);
    CREATE TRIGGER messages_count_insert AFTER INSERT ON messages BEGIN
        UPDATE store_state SET total = total + 1, unread = unread + (new.read = 0);
    END;
    CREATE TRIGGER messages_count_delete AFTER DELETE ON messages BEGIN
        UPDATE store_state SET total = total - 1, unread = unread - (old.read = 0);
    END;
    CREATE TRIGGER messages_count_read AFTER UPDATE OF read ON messages BEGIN
        UPDATE store_state SET unread = unread + (new.read = 0) - (old.read = 0);
    END;
    "#,
    // 5: bounded summaries (issue #11). A list page reads up to 1,000 rows, and a
    // message may have 20,000 To addresses, so the list columns keep only the
    // first 50 addresses (summary.rs, SUMMARY_ADDRESSES) and the `*_count`
    // columns how many the header has; NULL means the list holds them all. The
    // complete lists stay in the raw message. Only the rows over the cap are
    // rewritten; json_each walks an array in order, and the subquery's order is
    // the order json_group_array sees.
    r#"
    ALTER TABLE messages ADD COLUMN to_count INTEGER;
    ALTER TABLE messages ADD COLUMN cc_count INTEGER;
    ALTER TABLE messages ADD COLUMN reply_to_count INTEGER;
    UPDATE messages SET
        to_count = json_array_length(to_list),
        to_list = (SELECT json_group_array(json(value))
                   FROM (SELECT value FROM json_each(messages.to_list) ORDER BY key LIMIT 50))
        WHERE json_array_length(to_list) > 50;
    UPDATE messages SET
        cc_count = json_array_length(cc_list),
        cc_list = (SELECT json_group_array(json(value))
                   FROM (SELECT value FROM json_each(messages.cc_list) ORDER BY key LIMIT 50))
        WHERE json_array_length(cc_list) > 50;
    UPDATE messages SET
        reply_to_count = json_array_length(reply_to_list),
        reply_to_list = (SELECT json_group_array(json(value))
                   FROM (SELECT value FROM json_each(messages.reply_to_list) ORDER BY key LIMIT 50))
        WHERE json_array_length(reply_to_list) > 50;
    "#,
    // 6: one store for every protocol (issue #12).
    // - `flagged` is the star (IMAP's \Flagged); the partial index serves
    //   `is:flagged` without indexing every unflagged row.
    // - `inline` counts inline parts (`has:inline`) and `bcc_list` holds the Bcc
    //   header (capped like `to_list`, count in `bcc_count`); NULL in a row
    //   stored before this migration until the index backfill has parsed it.
    // - `modseq` is the `change_seq` of the last commit that changed the message
    //   (delivery, flags, tags): "what changed since N" for IMAP CONDSTORE.
    // - `tags` are named case-insensitively; `message_tags` links them, both
    //   ways indexed, and cascades with either side.
    // - `mailboxes` lists every address a message was sent to (envelope
    //   recipients, To, Cc), lowercased, so per-recipient views are index
    //   lookups; filled here from the stored lists.
    // - `uid_validity` is fixed once, when the store gets this schema (IMAP
    //   UIDVALIDITY; ids are never reused, so it never has to change).
    // - The search index is rebuilt with columns for cc:, bcc:, reply-to: and
    //   message-id:; every message is indexed again by the backfill.
    r#"
    ALTER TABLE messages ADD COLUMN flagged INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE messages ADD COLUMN inline INTEGER;
    ALTER TABLE messages ADD COLUMN bcc_list TEXT;
    ALTER TABLE messages ADD COLUMN bcc_count INTEGER;
    ALTER TABLE messages ADD COLUMN modseq INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX messages_flagged ON messages(id) WHERE flagged = 1;
    CREATE INDEX messages_modseq ON messages(modseq);
    CREATE TABLE tags (
        id   INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE COLLATE NOCASE
    ) STRICT;
    CREATE TABLE message_tags (
        tag_id     INTEGER NOT NULL REFERENCES tags(id) ON DELETE CASCADE,
        message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
        PRIMARY KEY (tag_id, message_id)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX message_tags_message ON message_tags(message_id, tag_id);
    CREATE TABLE mailboxes (
        address    TEXT NOT NULL,
        message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
        PRIMARY KEY (address, message_id)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX mailboxes_message ON mailboxes(message_id);
    INSERT OR IGNORE INTO mailboxes (address, message_id)
        SELECT lower(r.value), messages.id FROM messages, json_each(messages.rcpt_to) AS r
        WHERE r.value <> '';
    INSERT OR IGNORE INTO mailboxes (address, message_id)
        SELECT lower(json_extract(a.value, '$.address')), messages.id
        FROM messages, json_each(messages.to_list) AS a
        WHERE json_extract(a.value, '$.address') <> '';
    INSERT OR IGNORE INTO mailboxes (address, message_id)
        SELECT lower(json_extract(a.value, '$.address')), messages.id
        FROM messages, json_each(messages.cc_list) AS a
        WHERE json_extract(a.value, '$.address') <> '';
    ALTER TABLE store_state ADD COLUMN uid_validity INTEGER NOT NULL DEFAULT 0;
    UPDATE store_state SET uid_validity = CAST(strftime('%s', 'now') AS INTEGER);
    DROP TRIGGER messages_unindex;
    DROP TABLE search;
    CREATE VIRTUAL TABLE search USING fts5(
        subject, sender, recipients, body, cc, bcc, reply_to, message_id,
        content = '', contentless_delete = 1,
        tokenize = 'unicode61 remove_diacritics 2'
    );
    CREATE TRIGGER messages_unindex AFTER DELETE ON messages BEGIN
        DELETE FROM search WHERE rowid = old.id;
    END;
    DELETE FROM unindexed;
    UPDATE store_state SET unindexed_below = (SELECT coalesce(max(id), 0) + 1 FROM messages);
    "#,
    // 7: IMAP folders (issue #13).
    // - `keywords` holds a message's other IMAP flags (\Answered, \Draft,
    //   \Deleted, keywords) as the client spelled them, space-separated (an
    //   IMAP flag is an atom: it has no spaces), in the order they were set.
    // - Each tag is a folder with its own UIDs: `message_tags.uid` comes from
    //   the tag's `next_uid` as the link is made (by the trigger, whichever
    //   statement makes it), so a message tagged late gets a UID above every
    //   earlier one there; existing links are numbered in id order.
    // - `tags.uid_validity` is the folder's UIDVALIDITY: the time in seconds
    //   the tag was made, and always above every one handed out before
    //   (`store_state.last_uid_validity`), so a tag deleted and made again in
    //   the same second still gets a new one. Tags that exist already get the
    //   store's UIDVALIDITY plus their id.
    // - `tags.folder` marks a tag made as a folder (IMAP CREATE): it stays
    //   while no message has it, until it is deleted.
    // - `sent` holds the copies a mail client saved after sending: apart from
    //   the caught mail, with their own ids (the Sent folder's UIDs), flags and
    //   modseq; their bytes in `sent_raw`, as `raw` holds the messages'.
    r#"
    ALTER TABLE messages ADD COLUMN keywords TEXT NOT NULL DEFAULT '';
    ALTER TABLE tags ADD COLUMN folder INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE tags ADD COLUMN uid_validity INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE tags ADD COLUMN next_uid INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE message_tags ADD COLUMN uid INTEGER NOT NULL DEFAULT 0;
    UPDATE message_tags SET uid = numbered.n
        FROM (SELECT tag_id, message_id,
                     row_number() OVER (PARTITION BY tag_id ORDER BY message_id) AS n
              FROM message_tags) AS numbered
        WHERE message_tags.tag_id = numbered.tag_id
          AND message_tags.message_id = numbered.message_id;
    UPDATE tags SET
        next_uid = 1 + coalesce((SELECT max(uid) FROM message_tags WHERE tag_id = tags.id), 0),
        uid_validity = (SELECT uid_validity FROM store_state) + id;
    CREATE INDEX message_tags_uid ON message_tags(tag_id, uid);
    ALTER TABLE store_state ADD COLUMN last_uid_validity INTEGER NOT NULL DEFAULT 0;
    UPDATE store_state SET last_uid_validity =
        max(uid_validity, coalesce((SELECT max(uid_validity) FROM tags), 0));
    CREATE TRIGGER tags_uid_validity AFTER INSERT ON tags BEGIN
        UPDATE store_state SET last_uid_validity =
            max(CAST(strftime('%s', 'now') AS INTEGER), last_uid_validity + 1);
        UPDATE tags SET uid_validity = (SELECT last_uid_validity FROM store_state)
            WHERE id = new.id;
    END;
    CREATE TRIGGER message_tags_uid AFTER INSERT ON message_tags BEGIN
        UPDATE message_tags SET uid = (SELECT next_uid FROM tags WHERE id = new.tag_id)
            WHERE tag_id = new.tag_id AND message_id = new.message_id;
        UPDATE tags SET next_uid = next_uid + 1 WHERE id = new.tag_id;
    END;
    CREATE TABLE sent (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        received_at INTEGER NOT NULL,
        size        INTEGER NOT NULL,
        read        INTEGER NOT NULL DEFAULT 0,
        flagged     INTEGER NOT NULL DEFAULT 0,
        keywords    TEXT    NOT NULL DEFAULT '',
        modseq      INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE sent_raw (
        id   INTEGER PRIMARY KEY REFERENCES sent(id) ON DELETE CASCADE,
        data BLOB NOT NULL
    ) STRICT;
    "#,
    // 8: relay attempts (issue #14). Every release or auto-relay of a message
    // is one row: when (milliseconds since the epoch), to whom and who was
    // left out (JSON arrays of addresses), whether the relay server took it,
    // and its reply or the error. Rows go with their message (cascade); the
    // index serves "the attempts of message N".
    r#"
    CREATE TABLE relays (
        id         INTEGER PRIMARY KEY,
        message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
        at         INTEGER NOT NULL,
        recipients TEXT    NOT NULL,
        skipped    TEXT    NOT NULL,
        ok         INTEGER NOT NULL,
        reply      TEXT    NOT NULL
    ) STRICT;
    CREATE INDEX relays_message ON relays(message_id, id);
    "#,
    // 9: the log in front of SQLite (issue #16). Deliveries are acknowledged
    // once they are in the log (`mail.db-log/`); the materialiser writes their
    // rows afterwards and keeps here, in the same transaction as the rows, the
    // position in the log up to which it has (`sqlite/log`'s `Position`:
    // segment number and byte offset). A store from before the log has none
    // to replay: 0, 0 is the start of an empty log. `log_id` ties the log to
    // this file: the log's segments carry it, so a database made anew beside
    // an old log (or an old backup put back) does not take the old log's
    // records for its own.
    r#"
    ALTER TABLE store_state ADD COLUMN log_segment INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE store_state ADD COLUMN log_offset INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE store_state ADD COLUMN log_id INTEGER NOT NULL DEFAULT 0;
    UPDATE store_state SET log_id = random();
    "#,
];

/// The schema version this build writes.
pub(crate) const VERSION: i64 = MIGRATIONS.len() as i64;

/// Bring the database to [`VERSION`], or refuse a file from a newer build.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    // Most opens find the schema current: that is a read, which must not wait
    // for the write lock (the materialiser's and the indexer's transactions
    // take hundreds of milliseconds under load, and every `mail` command
    // opens the store).
    let current: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if current == VERSION {
        return Ok(());
    }
    // The version the file had when this call first looked.
    let mut started_at = None;
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let version: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
        if version > VERSION {
            return Err(StoreError::TooNew {
                found: version,
                supported: VERSION,
            });
        }
        let Some(migration) = MIGRATIONS.get(version as usize) else {
            return Ok(());
        };
        // A new file goes through every step; only an upgrade is worth a line.
        let fresh = *started_at.get_or_insert(version) == 0;
        if !fresh {
            tracing::info!(
                from = version,
                to = version + 1,
                "migrating mail store schema"
            );
        } else {
            tracing::debug!(to = version + 1, "creating mail store schema");
        }
        tx.execute_batch(migration)?;
        tx.pragma_update(None, "user_version", version + 1)?;
        tx.commit()?;
    }
}
