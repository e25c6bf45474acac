//! What FETCH and SEARCH read from a message (placeholder; being written).
