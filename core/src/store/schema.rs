//! The schema, as the migrations that build it (`PRAGMA user_version` counts those applied).

pub(super) const MIGRATIONS: [&str; 5] = ["
CREATE TABLE resources (
    account TEXT NOT NULL, type TEXT NOT NULL, id_tag BLOB NOT NULL,
    version TEXT, last_updated TEXT,
    query TEXT NOT NULL, pass INTEGER NOT NULL,
    code_tag BLOB, category_tag BLOB,
    nonce BLOB NOT NULL, payload BLOB NOT NULL,
    PRIMARY KEY (account, type, id_tag));
CREATE INDEX resources_by_code ON resources (account, code_tag);
CREATE INDEX resources_by_query ON resources (account, query, pass);
CREATE TABLE binaries (
    account TEXT NOT NULL, id_tag BLOB NOT NULL, nonce BLOB NOT NULL, payload BLOB NOT NULL,
    PRIMARY KEY (account, id_tag));
CREATE TABLE sync_queries (
    account TEXT NOT NULL, query TEXT NOT NULL,
    since TEXT, pending_since TEXT, resume_nonce BLOB, resume_sealed BLOB, pass INTEGER NOT NULL DEFAULT 0, full_pass_done INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    PRIMARY KEY (account, query));
CREATE TABLE sync_accounts (
    account TEXT PRIMARY KEY, pass INTEGER NOT NULL DEFAULT 0, last_full_ms INTEGER, last_sync_ms INTEGER);
", "
-- v2: a small sealed projection of each result (what trends and summaries read instead of the whole resource),
-- and the newest result per code, kept up to date by sync.
ALTER TABLE resources ADD COLUMN brief_nonce BLOB;
ALTER TABLE resources ADD COLUMN brief BLOB;
ALTER TABLE resources ADD COLUMN sort_key INTEGER;
CREATE TABLE latest (
    account TEXT NOT NULL, code_tag BLOB NOT NULL, id_tag BLOB NOT NULL, nonce BLOB NOT NULL, brief BLOB NOT NULL,
    PRIMARY KEY (account, code_tag));
", "
-- v3: no clinical date in the clear (the date lives only in the sealed brief); a sealed canary that tells a wrong key
-- from damage; the codes whose newest result must be chosen again (after deletions), done in Rust with the key.
ALTER TABLE resources DROP COLUMN sort_key;
-- lastUpdated stamps are often the clinical time: from now on only their keyed hash is kept (equality is all sync
-- needs); the clear ones go, so the next sync sees those rows as changed and writes them again.
UPDATE resources SET last_updated = NULL;
CREATE TABLE meta (name TEXT PRIMARY KEY, nonce BLOB NOT NULL, sealed BLOB NOT NULL);
CREATE TABLE latest_stale (account TEXT NOT NULL, code_tag BLOB NOT NULL, PRIMARY KEY (account, code_tag));
", "
-- v4: background sync while locked. Each account's key pair (the public key in the clear, the private key sealed
-- under the account's keys); what a locked sync received, sealed to the public key and applied at unlock; the
-- sealed \"what's new\" list of records a sync brought.
CREATE TABLE account_keypairs (
    account TEXT PRIMARY KEY, public_key BLOB NOT NULL, sk_nonce BLOB NOT NULL, sk_sealed BLOB NOT NULL);
CREATE TABLE locked_inbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, account TEXT NOT NULL, enc BLOB NOT NULL, sealed BLOB NOT NULL);
CREATE INDEX locked_inbox_by_account ON locked_inbox (account, seq);
CREATE TABLE whats_new (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, account TEXT NOT NULL, nonce BLOB NOT NULL, sealed BLOB NOT NULL);
CREATE INDEX whats_new_by_account ON whats_new (account, seq);
", "
-- v5: the locked inbox authenticated and bounded (issue 20). Envelopes are sealed in HPKE PSK mode with a per-account
-- secret kept in the host's secure store (never here) and carry a per-account sequence number `nseq`, bound in their
-- AAD. Envelopes from before (no `nseq`) cannot be authenticated: unlock refuses them, and the next sync fetches
-- their data again. Per account: the writer's counter, the last number applied, the inbox's size (for its cap).
-- Per query: keyed digests of the pages sealed since the last unlocked write, and the current pass's counts, so that
-- an unchanged page is not sealed again.
ALTER TABLE locked_inbox ADD COLUMN nseq INTEGER;
ALTER TABLE account_keypairs ADD COLUMN next_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE account_keypairs ADD COLUMN applied_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE account_keypairs ADD COLUMN inbox_bytes INTEGER NOT NULL DEFAULT 0;
UPDATE account_keypairs SET inbox_bytes = (SELECT coalesce(sum(length(enc) + length(sealed)), 0) FROM locked_inbox
    WHERE locked_inbox.account = account_keypairs.account);
CREATE TABLE locked_pages (
    account TEXT NOT NULL, query TEXT NOT NULL, tag BLOB NOT NULL, seen_pass INTEGER NOT NULL,
    PRIMARY KEY (account, query, tag));
CREATE TABLE locked_passes (
    account TEXT NOT NULL, query TEXT NOT NULL, pass INTEGER NOT NULL,
    sealed INTEGER NOT NULL DEFAULT 0, skipped INTEGER NOT NULL DEFAULT 0, reseal INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (account, query));
"];
