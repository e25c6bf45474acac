//! The PostgreSQL schema and its migrations.
//!
//! The tables mirror the SQLite schema's final state (see `sqlite/schema.rs`)
//! with PostgreSQL's types: times are milliseconds since the epoch in
//! `bigint`, address lists are JSON text, raw bytes are `bytea` stored
//! uncompressed out of line (so `substring` reads one chunk of a large message
//! without reading the rest), and the search index is a `tsvector` column with
//! a GIN index, filled from words split in Rust (see `search.rs`).
//!
//! Every write transaction starts with [`super::next_seq`], which takes the
//! one `store_state` row's lock: commits are serialised across every node, so
//! ids, UIDs and modseqs grow in commit order (an IMAP client that has seen
//! UID 7 never later sees a new UID 6).
//!
//! Several nodes may start at once: [`migrate`] holds a transaction-level
//! advisory lock ([`super::locks::MIGRATE`]) while it reads the version and
//! applies what is missing, so exactly one of them migrates and the others
//! find the work done.

use deadpool_postgres::Object;

use super::locks;
use crate::StoreError;

const MIGRATIONS: &[&str] = &[
    r#"
    CREATE TABLE store_state (
        id                integer PRIMARY KEY CHECK (id = 1),
        change_seq        bigint  NOT NULL DEFAULT 0,
        total             bigint  NOT NULL DEFAULT 0,
        unread            bigint  NOT NULL DEFAULT 0,
        -- The raw bytes of the stored messages: what StoreOptions::max_size
        -- holds on PostgreSQL (the database's files do not shrink on delete).
        bytes             bigint  NOT NULL DEFAULT 0,
        uid_validity      bigint  NOT NULL,
        last_uid_validity bigint  NOT NULL
    );
    INSERT INTO store_state (id, uid_validity, last_uid_validity)
        VALUES (1, extract(epoch FROM now())::bigint, extract(epoch FROM now())::bigint);

    CREATE TABLE messages (
        id             bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        received_at    bigint  NOT NULL,
        mail_from      text    NOT NULL,
        rcpt_to        text    NOT NULL,
        helo           text    NOT NULL,
        client_addr    text    NOT NULL,
        bare_lf        boolean NOT NULL,
        smtputf8       boolean NOT NULL,
        tls_version    text,
        tls_cipher     text,
        auth_user      text,
        size           bigint  NOT NULL,
        parsed         boolean NOT NULL,
        subject        text    NOT NULL,
        from_name      text,
        from_addr      text,
        to_list        text    NOT NULL,
        to_count       bigint,
        cc_list        text    NOT NULL,
        cc_count       bigint,
        reply_to_list  text    NOT NULL,
        reply_to_count bigint,
        bcc_list       text,
        bcc_count      bigint,
        date           text,
        message_id     text,
        attachments    bigint  NOT NULL,
        inline         bigint,
        snippet        text    NOT NULL,
        read           boolean NOT NULL DEFAULT false,
        flagged        boolean NOT NULL DEFAULT false,
        keywords       text    NOT NULL DEFAULT '',
        modseq         bigint  NOT NULL,
        search         tsvector
    );
    CREATE INDEX messages_received_at ON messages (received_at);
    CREATE INDEX messages_unread ON messages (id) WHERE NOT read;
    CREATE INDEX messages_flagged ON messages (id) WHERE flagged;
    CREATE INDEX messages_modseq ON messages (modseq);
    CREATE INDEX messages_search ON messages USING gin (search);

    CREATE TABLE raw (
        id   bigint PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
        data bytea  NOT NULL
    );
    ALTER TABLE raw ALTER COLUMN data SET STORAGE EXTERNAL;

    -- Messages stored but not yet in the search index, with when they were
    -- queued (an older sokkel indexed its deliveries after their
    -- commit); the cluster's indexer takes over those a dead node left.
    CREATE TABLE unindexed (
        id        bigint      PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
        queued_at timestamptz NOT NULL DEFAULT now()
    );

    CREATE TABLE tags (
        id           bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        name         text    NOT NULL,
        -- TagName::key(): the name folded in Rust, so that both backends
        -- compare names alike.
        key          text    NOT NULL UNIQUE,
        folder       boolean NOT NULL DEFAULT false,
        uid_validity bigint  NOT NULL,
        next_uid     bigint  NOT NULL DEFAULT 1
    );
    CREATE TABLE message_tags (
        tag_id     bigint NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
        message_id bigint NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
        uid        bigint NOT NULL,
        PRIMARY KEY (tag_id, message_id)
    );
    CREATE INDEX message_tags_message ON message_tags (message_id, tag_id);
    CREATE INDEX message_tags_uid ON message_tags (tag_id, uid);

    CREATE TABLE mailboxes (
        address    text   NOT NULL,
        message_id bigint NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
        PRIMARY KEY (address, message_id)
    );
    CREATE INDEX mailboxes_message ON mailboxes (message_id);
    -- A login's mailbox is a byte-order range over addresses (folders.rs),
    -- whatever the database's collation.
    CREATE INDEX mailboxes_address_bytes ON mailboxes (address COLLATE "C");

    CREATE TABLE sent (
        id          bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        received_at bigint  NOT NULL,
        size        bigint  NOT NULL,
        read        boolean NOT NULL DEFAULT false,
        flagged     boolean NOT NULL DEFAULT false,
        keywords    text    NOT NULL DEFAULT '',
        modseq      bigint  NOT NULL
    );
    CREATE TABLE sent_raw (
        id   bigint PRIMARY KEY REFERENCES sent (id) ON DELETE CASCADE,
        data bytea  NOT NULL
    );
    ALTER TABLE sent_raw ALTER COLUMN data SET STORAGE EXTERNAL;

    CREATE TABLE relays (
        id         bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        message_id bigint  NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
        at         bigint  NOT NULL,
        recipients text    NOT NULL,
        skipped    text    NOT NULL,
        ok         boolean NOT NULL,
        reply      text    NOT NULL
    );
    CREATE INDEX relays_message ON relays (message_id, id);

    -- The message counts, kept by statement-level triggers so that a count is
    -- one row read however many messages there are.
    CREATE FUNCTION sokkel_count_insert() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE store_state SET
            total = total + (SELECT count(*) FROM new_rows),
            unread = unread + (SELECT count(*) FROM new_rows WHERE NOT read),
            bytes = bytes + (SELECT coalesce(sum(size), 0) FROM new_rows);
        RETURN NULL;
    END $$;
    CREATE FUNCTION sokkel_count_delete() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE store_state SET
            total = total - (SELECT count(*) FROM old_rows),
            unread = unread - (SELECT count(*) FROM old_rows WHERE NOT read),
            bytes = bytes - (SELECT coalesce(sum(size), 0) FROM old_rows);
        RETURN NULL;
    END $$;
    CREATE FUNCTION sokkel_count_read() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE store_state SET unread = unread
            + (SELECT count(*) FROM new_rows WHERE NOT read)
            - (SELECT count(*) FROM old_rows WHERE NOT read);
        RETURN NULL;
    END $$;
    CREATE TRIGGER messages_count_insert AFTER INSERT ON messages
        REFERENCING NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION sokkel_count_insert();
    CREATE TRIGGER messages_count_delete AFTER DELETE ON messages
        REFERENCING OLD TABLE AS old_rows
        FOR EACH STATEMENT EXECUTE FUNCTION sokkel_count_delete();
    CREATE TRIGGER messages_count_read AFTER UPDATE ON messages
        REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION sokkel_count_read();
    "#,
    r#"
    -- Version 2: a count trigger leaves the store_state row alone when its
    -- statement changed no count (an UPDATE that changed no read flag, such
    -- as a modseq touch; a DELETE of nothing): each UPDATE of that row in a
    -- transaction leaves a version every later one steps over.
    CREATE OR REPLACE FUNCTION sokkel_count_delete() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF EXISTS (SELECT 1 FROM old_rows) THEN
            UPDATE store_state SET
                total = total - (SELECT count(*) FROM old_rows),
                unread = unread - (SELECT count(*) FROM old_rows WHERE NOT read),
                bytes = bytes - (SELECT coalesce(sum(size), 0) FROM old_rows);
        END IF;
        RETURN NULL;
    END $$;
    CREATE OR REPLACE FUNCTION sokkel_count_read() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        delta bigint := (SELECT count(*) FROM new_rows WHERE NOT read)
            - (SELECT count(*) FROM old_rows WHERE NOT read);
    BEGIN
        IF delta <> 0 THEN
            UPDATE store_state SET unread = unread + delta;
        END IF;
        RETURN NULL;
    END $$;
    "#,
];

/// The schema version this build writes.
pub(crate) const VERSION: i64 = MIGRATIONS.len() as i64;

/// Bring the schema up to date, once across every node starting at once.
pub(crate) async fn migrate(client: &mut Object) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&locks::MIGRATE])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS sokkel_schema (
             id      integer PRIMARY KEY CHECK (id = 1),
             version bigint  NOT NULL
         );
         INSERT INTO sokkel_schema (id, version) VALUES (1, 0) ON CONFLICT DO NOTHING;",
    )
    .await?;
    let found: i64 = tx
        .query_one("SELECT version FROM sokkel_schema", &[])
        .await?
        .get(0);
    if found > VERSION {
        return Err(StoreError::TooNew {
            found,
            supported: VERSION,
        });
    }
    for (version, migration) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        if found == 0 {
            tracing::debug!(to = version + 1, "creating mail store schema");
        } else {
            tracing::info!(
                from = version,
                to = version + 1,
                "migrating mail store schema"
            );
        }
        tx.batch_execute(migration).await?;
    }
    tx.execute("UPDATE sokkel_schema SET version = $1", &[&VERSION])
        .await?;
    tx.commit().await?;
    Ok(())
}
