"""The database file's schema, as its history: MIGRATIONS[i] takes it from version i to i + 1.

One schema for every part of the store (moderation, answers, server settings), applied by
bot/storage/database.py when the file opens. Append a migration, never edit a shipped one.
"""

MIGRATIONS: list[tuple[str, ...]] = [
    (
        """CREATE TABLE guild_settings (
            guild_id INTEGER PRIMARY KEY,
            method TEXT NOT NULL DEFAULT 'embedding',
            threshold REAL NOT NULL DEFAULT 0.5,
            store_text INTEGER NOT NULL DEFAULT 0)""",
        """CREATE TABLE labels (
            guild_id INTEGER NOT NULL,
            name TEXT NOT NULL COLLATE NOCASE,
            emoji TEXT,
            description TEXT,
            position INTEGER NOT NULL,
            PRIMARY KEY (guild_id, name))""",
        """CREATE TABLE watched_channels (
            guild_id INTEGER NOT NULL,
            channel_id INTEGER NOT NULL,
            threshold REAL,
            log_channel_id INTEGER,
            PRIMARY KEY (guild_id, channel_id))""",
        """CREATE TABLE tags (
            id INTEGER PRIMARY KEY,
            guild_id INTEGER NOT NULL,
            channel_id INTEGER NOT NULL,
            message_id INTEGER NOT NULL,
            author_id INTEGER NOT NULL,
            label TEXT NOT NULL,
            score REAL,
            method TEXT NOT NULL,
            tagged_by INTEGER NOT NULL,
            auto INTEGER NOT NULL,
            created_at REAL NOT NULL,
            text TEXT,
            UNIQUE (guild_id, message_id, label))""",
        "CREATE INDEX tags_by_time ON tags (guild_id, created_at)",
    ),
    (
        # Learned labels. A moderator's tag is a positive example; with store_text off its text is not kept,
        # only its embedding (vector, float32 bytes, and the model that made it).
        "ALTER TABLE tags ADD COLUMN vector BLOB",
        "ALTER TABLE tags ADD COLUMN vector_model TEXT",
        # Answers that a message is not a label ("Not this"), or none of them (label '': "None of these").
        """CREATE TABLE rejections (
            guild_id INTEGER NOT NULL,
            channel_id INTEGER NOT NULL,
            message_id INTEGER NOT NULL,
            label TEXT NOT NULL COLLATE NOCASE,
            tagged_by INTEGER NOT NULL,
            created_at REAL NOT NULL,
            text TEXT,
            vector BLOB,
            vector_model TEXT,
            PRIMARY KEY (guild_id, message_id, label))""",
        """CREATE TABLE label_models (
            guild_id INTEGER PRIMARY KEY,
            embedding_model TEXT NOT NULL,
            label_set TEXT NOT NULL,
            classes TEXT NOT NULL,
            dim INTEGER NOT NULL,
            weights BLOB NOT NULL,
            bias BLOB NOT NULL,
            examples INTEGER NOT NULL,
            examples_until REAL NOT NULL,
            trained_at REAL NOT NULL)""",
        # Auto-tags below certainty, posted to the log channel until a moderator answers.
        """CREATE TABLE reviews (
            guild_id INTEGER NOT NULL,
            channel_id INTEGER NOT NULL,
            message_id INTEGER NOT NULL,
            author_id INTEGER NOT NULL,
            label TEXT NOT NULL,
            score REAL NOT NULL,
            method TEXT NOT NULL,
            created_at REAL NOT NULL,
            text TEXT,
            vector BLOB,
            vector_model TEXT,
            PRIMARY KEY (guild_id, message_id))""",
        "ALTER TABLE guild_settings ADD COLUMN review_threshold REAL",
    ),
    (
        # A server's system prompt for /chat conversations (set by its admins with /config).
        """CREATE TABLE system_prompts (
            guild_id INTEGER PRIMARY KEY,
            prompt TEXT NOT NULL,
            set_by INTEGER NOT NULL,
            set_at REAL NOT NULL)""",
        # What /generate's Regenerate and Continue buttons need after a restart: the request and the text so far.
        """CREATE TABLE answers (
            message_id INTEGER PRIMARY KEY,
            guild_id INTEGER NOT NULL,
            owner_id INTEGER NOT NULL,
            request TEXT NOT NULL,
            text TEXT NOT NULL,
            created_at REAL NOT NULL)""",
    ),
]
