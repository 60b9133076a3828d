//! Byte offsets (Cedar's source spans, miette labels) to file:line:column, and the few places
//! Cedar does not locate for us (annotations, client attributes in `tenure.toml`).

use tenure_core::config::{ConfigError, SourceFile};

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = text.floor_char_boundary(offset.min(text.len()));
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// A located error in `file`.
pub(crate) fn error(file: &SourceFile, offset: usize, message: String) -> ConfigError {
    let (line, column) = line_column(&file.text, offset);
    ConfigError {
        file: file.path.clone(),
        line,
        column,
        message,
    }
}

/// One `@key("value")` annotation in a policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Annotation {
    pub key: String,
    pub value: String,
    /// Byte offset of the `@`.
    pub offset: usize,
}

/// Every annotation in a Cedar file, in order, skipping comments and string literals.
pub(crate) fn annotations(text: &str) -> Vec<Annotation> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'"' => i = skip_string(b, i).0,
            b'@' => {
                let at = i;
                i += 1;
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                let key = &text[start..i];
                let mut j = i;
                while j < b.len() && b[j].is_ascii_whitespace() {
                    j += 1;
                }
                let mut value = String::new();
                if b.get(j) == Some(&b'(') {
                    j += 1;
                    while j < b.len() && b[j].is_ascii_whitespace() {
                        j += 1;
                    }
                    if b.get(j) == Some(&b'"') {
                        let (end, v) = skip_string(b, j);
                        value = v;
                        i = end;
                    }
                }
                out.push(Annotation {
                    key: key.to_string(),
                    value,
                    offset: at,
                });
            }
            _ => i += 1,
        }
    }
    out
}

/// Skips the string literal opening at `start`; returns the offset after it and its content
/// (escapes of `"` and `\` undone; others kept as written).
fn skip_string(b: &[u8], start: usize) -> (usize, String) {
    let mut i = start + 1;
    let mut content = Vec::new();
    while i < b.len() {
        match b[i] {
            b'\\' if i + 1 < b.len() => {
                if matches!(b[i + 1], b'"' | b'\\') {
                    content.push(b[i + 1]);
                } else {
                    content.extend_from_slice(&b[i..i + 2]);
                }
                i += 2;
            }
            b'"' => return (i + 1, String::from_utf8_lossy(&content).into_owned()),
            c => {
                content.push(c);
                i += 1;
            }
        }
    }
    (i, String::from_utf8_lossy(&content).into_owned())
}

/// Best effort: where `attribute` of `client` is set in `tenure.toml` (the client's `id` line,
/// or the start of the file, when the attribute itself cannot be found).
pub(crate) fn client_attribute(text: &str, client: &str, attribute: &str) -> (usize, usize) {
    let id_line = text.lines().scan(0usize, |pos, l| {
        let start = *pos;
        *pos += l.len() + 1;
        Some((start, l))
    });
    let mut client_at = None;
    for (start, l) in id_line {
        let t = l.trim_start();
        if let Some(rest) = t.strip_prefix("id")
            && let Some(v) = rest.trim_start().strip_prefix('=')
            && v.trim().trim_matches('"') == client
        {
            client_at = Some(start + (l.len() - t.len()));
            break;
        }
    }
    let Some(from) = client_at else {
        return (1, 1);
    };
    // The attribute is in this client's section: up to the next `[[`.
    let section_end = text[from..].find("[[").map_or(text.len(), |e| from + e);
    let section = &text[from..section_end];
    let mut pos = 0;
    for l in section.split_inclusive('\n') {
        let t = l.trim_start();
        let key = t.trim_start_matches('"');
        if key.starts_with(attribute)
            && key[attribute.len()..]
                .trim_start_matches('"')
                .trim_start()
                .starts_with('=')
        {
            return line_column(text, from + pos + (l.len() - t.len()));
        }
        if let Some(i) = l.find(&format!("{attribute} ="))
            && l[..i].contains('{')
        {
            return line_column(text, from + pos + i);
        }
        pos += l.len();
    }
    line_column(text, from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_become_lines_and_columns() {
        let t = "ab\ncdé\nf";
        assert_eq!(line_column(t, 0), (1, 1));
        assert_eq!(line_column(t, 3), (2, 1));
        assert_eq!(line_column(t, 7), (2, 4)); // after the two-byte é
        assert_eq!(line_column(t, 999), (3, 2));
    }

    #[test]
    fn annotations_skip_comments_and_strings() {
        let t = "// @id(\"no\")\n@id(\"a\") @approval( \"owner\" )\npermit (principal, action, resource) when { \"@id(x)\" == \"\" };";
        let a = annotations(t);
        assert_eq!(a.len(), 2, "{a:?}");
        assert_eq!((a[0].key.as_str(), a[0].value.as_str()), ("id", "a"));
        assert_eq!(line_column(t, a[1].offset), (2, 10));
        assert_eq!(a[1].value, "owner");
    }

    #[test]
    fn client_attributes_are_found_in_their_section() {
        let t = "[[clients]]\nid = \"acme\"\n[clients.attributes]\nrate = 1.5\n\n[[clients]]\nid = \"globex\"\nattributes = { rate = 2.5 }\n";
        assert_eq!(client_attribute(t, "acme", "rate"), (4, 1));
        assert_eq!(client_attribute(t, "globex", "rate"), (8, 16));
        assert_eq!(client_attribute(t, "globex", "nope"), (7, 1));
        assert_eq!(client_attribute(t, "initech", "rate"), (1, 1));
    }
}
