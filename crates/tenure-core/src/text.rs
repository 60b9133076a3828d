//! Bounds on free text that enters tenure: no NUL character (PostgreSQL refuses it in text, so
//! the same input must be refused on SQLite too, before anything is stored) and a maximum
//! length per kind of field. Every way in (events, HR webhooks, roster rows, SCIM users, token
//! names, justifications, comments) checks its text here, so both databases agree.

use std::fmt;

/// The longest name-like value: a person's name, department, title, location, an engagement
/// role, a client's name, an event's source, a token's name.
pub const MAX_NAME: usize = 256;

/// The longest email address (RFC 5321: 254 octets in a path).
pub const MAX_EMAIL: usize = 254;

/// The longest sentence-like value: a justification, a decision's comment, a task's message.
pub const MAX_TEXT: usize = 2_000;

/// The longest string value of a person's or a client's attribute.
pub const MAX_ATTRIBUTE: usize = 1_000;

/// The most strings in one list-valued attribute.
pub const MAX_LIST: usize = 100;

/// The most identity-provider groups one person's `groups` attribute holds.
pub const MAX_GROUPS: usize = 1_000;

/// Why a text value is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextError {
    /// It holds a NUL character (`\u0000`).
    Nul,
    /// It is longer than the bound, in characters.
    TooLong {
        /// The bound.
        max: usize,
    },
}

impl fmt::Display for TextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TextError::Nul => f.write_str("must not contain a NUL character"),
            TextError::TooLong { max } => write!(f, "must be at most {max} characters"),
        }
    }
}

impl std::error::Error for TextError {}

/// Checks that `value` holds no NUL and at most `max` characters.
pub fn check(value: &str, max: usize) -> Result<(), TextError> {
    if value.contains('\0') {
        return Err(TextError::Nul);
    }
    // A string of at most `max` bytes has at most `max` characters: count only longer ones.
    if value.len() > max && value.chars().count() > max {
        return Err(TextError::TooLong { max });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_and_length_are_refused_and_length_counts_characters() {
        assert_eq!(check("Ada", 3), Ok(()));
        assert_eq!(check("", 0), Ok(()));
        assert_eq!(check("Ad\0a", 10), Err(TextError::Nul));
        assert_eq!(check("\0", 10), Err(TextError::Nul));
        assert_eq!(check("Adas", 3), Err(TextError::TooLong { max: 3 }));
        // Four characters, eight bytes: within a bound of four.
        assert_eq!(check("éééé", 4), Ok(()));
        assert_eq!(check("ééééé", 4), Err(TextError::TooLong { max: 4 }));
        // Other control characters are the caller's business.
        assert_eq!(check("a\tb\nc\u{1}", 10), Ok(()));
        assert_eq!(
            TextError::Nul.to_string(),
            "must not contain a NUL character"
        );
        assert_eq!(
            TextError::TooLong { max: 256 }.to_string(),
            "must be at most 256 characters"
        );
    }
}
