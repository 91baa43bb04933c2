-- Facts every worker of one deployment must agree on. One row: the public half of the server
-- signing key the database has seen first; a worker whose key differs refuses to start.
CREATE TABLE deployment_signing_key (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    key_id TEXT NOT NULL,
    public_key TEXT NOT NULL,
    created_ts BIGINT NOT NULL
);
