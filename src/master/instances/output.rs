//! Reading a child's output lines: a CHECK_POINT is a [`crate::stats::CheckPoint`]
//! (parsed with `str::parse`, the same type the child printed it with); this file knows
//! the other line that matters, a fatal tunnel error.

/// True when a child line reports a fatal tunnel error (Go sets the status to `error`).
pub fn is_error_line(line: &str) -> bool {
    line.contains("Server error:") || line.contains("Client error:")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_lines_are_recognised_for_both_roles() {
        assert!(is_error_line("2026-01-02 ERROR  Client error: dial failed"));
        assert!(is_error_line("Server error: bind"));
        assert!(!is_error_line("Server started: server://..."));
    }
}
