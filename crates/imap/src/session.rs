//! The IMAP session core (placeholder; being written).
