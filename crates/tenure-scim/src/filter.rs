//! SCIM filter expressions (RFC 7644 §3.4.2.2): parser, AST and canonical printer.
//!
//! The grammar, with the leniencies this parser adds marked *(lenient)*:
//!
//! ```text
//! FILTER    = attrExp / logExp / valuePath / *1"not" "(" FILTER ")"
//! valuePath = attrPath "[" valFilter "]"
//! valFilter = attrExp / logExp / *1"not" "(" valFilter ")"
//! attrExp   = (attrPath SP "pr") / (attrPath SP compareOp SP compValue)
//! logExp    = FILTER SP ("and" / "or") SP FILTER
//! compValue = false / null / true / number / string    ; JSON (RFC 7159)
//! attrPath  = [URI ":"] ATTRNAME *1subAttr
//! ATTRNAME  = ALPHA *(nameChar)                          ; also "$ref" (RFC 7643 §2.1)
//! nameChar  = "-" / "_" / DIGIT / ALPHA
//! subAttr   = "." ATTRNAME
//! ```
//!
//! - Operators (`eq ne co sw ew pr gt ge lt le`) and logical keywords (`and or not`) are
//!   case-insensitive. Precedence is `not` > `and` > `or`; parentheses group.
//! - Whitespace between tokens may be any run of space, tab, CR or LF *(lenient)*, and may be
//!   omitted next to punctuation, e.g. `members[value eq"x"]` or `(a pr)or(b pr)` *(lenient)*.
//! - Attribute paths keep the case they were written in; comparing them case-insensitively
//!   against the schema is the caller's job. A schema URN prefix is everything before the
//!   last `:` of the path, so `urn:…:2.0:User:name.familyName` has schema `urn:…:2.0:User`.
//!   A name may start with `$` (as in `members.$ref`).
//! - Inside `attr[...]` the attribute paths are sub-attributes of `attr` and must be plain
//!   names (RFC 7643 §2.3.8: complex attributes do not nest); value filters do not nest and must
//!   follow a top-level attribute. `attr[...].sub` is only valid as a PATCH path
//!   ([`crate::patch::PatchPath`]), never in a filter.
//! - `true`, `false` and `null` are accepted in any case *(lenient)*. Numbers follow the JSON
//!   grammar exactly. Strings are JSON strings with all JSON escapes; raw control characters
//!   inside them are accepted *(lenient)*.
//! - **Entra ID quirk**: Entra ID writes booleans as the strings `"True"` / `"False"`, e.g.
//!   `active eq "True"`. The parser cannot know the attribute's type, so such values stay
//!   [`CompValue::String`] in the AST; the caller coerces them when it checks the filter
//!   against the schema and finds a boolean attribute.
//! - Nesting of `(…)`, `not (…)` and `attr[…]` is capped at [`MAX_DEPTH`] levels, so parsing,
//!   printing and dropping an AST never overflow the stack. `and`/`or` chains are flat lists,
//!   so long chains do not nest at all.
//! - A filter (or a PATCH path's value filter) holds at most [`MAX_TERMS`] attribute
//!   expressions (`attr op value` or `attr pr`): every consumer translates a filter into work
//!   proportional to its terms (SQL expressions whose depth databases cap, in-memory
//!   evaluation per resource), so the size is bounded where it is read.
//! - A NUL character is refused in comparison strings, escaped (`\u0000`) or raw: no stored
//!   value can hold one (PostgreSQL refuses NUL in text), so such a filter is a client bug.
//!
//! The AST is normalized: `And` and `Or` hold at least two operands and never directly contain
//! an operand of their own kind (`a and (b and c)` parses to one `And` of three). The parser
//! only produces normalized ASTs, and [`Filter::and`] / [`Filter::or`] keep them normalized.
//! `Display` prints a canonical filter (lowercase keywords, single spaces, the fewest
//! parentheses) that re-parses to the same AST for every normalized, valid AST (within the
//! bounds above, with no NUL in its strings).

use std::fmt::{self, Write as _};
use std::str::FromStr;

use serde_json::Number;

/// Maximum nesting depth of `(…)`, `not (…)` and `attr[…]` groups accepted by the parsers.
pub const MAX_DEPTH: usize = 64;

/// Maximum number of attribute expressions (`attr op value`, `attr pr`) in one filter or PATCH
/// path accepted by the parsers.
pub const MAX_TERMS: usize = 100;

/// A filter or path syntax error, with the byte offset into the input where it was detected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at offset {offset}")]
pub struct ParseError {
    offset: usize,
    message: String,
}

impl ParseError {
    pub(crate) fn new(offset: usize, message: impl Into<String>) -> Self {
        Self {
            offset,
            message: message.into(),
        }
    }

    /// Byte offset into the parsed input at which the error was detected.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The description of the error, without the offset.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// An attribute path: `[schemaURN:]attr[.subAttr]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AttrPath {
    /// Schema URN prefix, e.g. `urn:ietf:params:scim:schemas:core:2.0:User`, without the `:`.
    pub schema: Option<String>,
    /// The attribute name, e.g. `name`.
    pub attr: String,
    /// The sub-attribute name, e.g. `familyName` in `name.familyName`.
    pub sub_attr: Option<String>,
}

impl AttrPath {
    /// A path to a top-level attribute without schema prefix.
    pub fn new(attr: impl Into<String>) -> Self {
        Self {
            schema: None,
            attr: attr.into(),
            sub_attr: None,
        }
    }

    /// A path to a sub-attribute without schema prefix, e.g. `name.familyName`.
    pub fn with_sub(attr: impl Into<String>, sub_attr: impl Into<String>) -> Self {
        Self {
            schema: None,
            attr: attr.into(),
            sub_attr: Some(sub_attr.into()),
        }
    }

    /// This path with the given schema URN prefix.
    pub fn in_schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    /// Parses a complete attribute path (no filter, no surrounding whitespace).
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        let mut p = Parser::new(input);
        let path = p.parse_attr_path()?;
        if !p.at_end() {
            return Err(ParseError::new(p.pos, "expected end of attribute path"));
        }
        Ok(path)
    }
}

impl FromStr for AttrPath {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(schema) = &self.schema {
            write!(f, "{schema}:")?;
        }
        f.write_str(&self.attr)?;
        if let Some(sub) = &self.sub_attr {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

/// A comparison operator (`pr` is not one: it is [`Filter::Present`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    /// `eq`: equal.
    Eq,
    /// `ne`: not equal.
    Ne,
    /// `co`: contains.
    Co,
    /// `sw`: starts with.
    Sw,
    /// `ew`: ends with.
    Ew,
    /// `gt`: greater than.
    Gt,
    /// `ge`: greater than or equal.
    Ge,
    /// `lt`: less than.
    Lt,
    /// `le`: less than or equal.
    Le,
}

impl CompareOp {
    /// Every comparison operator, in RFC order.
    pub const ALL: [CompareOp; 9] = [
        CompareOp::Eq,
        CompareOp::Ne,
        CompareOp::Co,
        CompareOp::Sw,
        CompareOp::Ew,
        CompareOp::Gt,
        CompareOp::Ge,
        CompareOp::Lt,
        CompareOp::Le,
    ];

    /// The lowercase keyword, e.g. `"eq"`.
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Co => "co",
            CompareOp::Sw => "sw",
            CompareOp::Ew => "ew",
            CompareOp::Gt => "gt",
            CompareOp::Ge => "ge",
            CompareOp::Lt => "lt",
            CompareOp::Le => "le",
        }
    }

    /// The operator for a keyword, case-insensitively (`"EQ"` → `Eq`); `None` for `pr` and others.
    pub fn from_keyword(keyword: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|op| op.as_str().eq_ignore_ascii_case(keyword))
    }
}

impl fmt::Display for CompareOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A comparison value: a JSON scalar.
///
/// Strings are kept as written even when they look like booleans (`"True"`, Entra ID) or dates;
/// typing them is the caller's job, against the schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompValue {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A JSON number.
    Number(Number),
    /// A JSON string, unescaped.
    String(String),
}

impl fmt::Display for CompValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompValue::Null => f.write_str("null"),
            CompValue::Bool(b) => write!(f, "{b}"),
            CompValue::Number(n) => write!(f, "{n}"),
            CompValue::String(s) => write_json_string(f, s),
        }
    }
}

fn write_json_string(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            '\u{8}' => f.write_str("\\b")?,
            '\u{c}' => f.write_str("\\f")?,
            c if (c as u32) < 0x20 => write!(f, "\\u{:04x}", c as u32)?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

/// A parsed SCIM filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// `path op value`, e.g. `userName eq "bjensen"`.
    Compare {
        /// The attribute compared.
        path: AttrPath,
        /// The comparison operator.
        op: CompareOp,
        /// The value compared against.
        value: CompValue,
    },
    /// `path pr`: the attribute has a non-empty value.
    Present(AttrPath),
    /// Conjunction of two or more operands, none of them an `And`.
    And(Vec<Filter>),
    /// Disjunction of two or more operands, none of them an `Or`.
    Or(Vec<Filter>),
    /// `not (filter)`.
    Not(Box<Filter>),
    /// `attr[filter]`: some value of the multi-valued complex `attr` matches `filter`, whose
    /// attribute paths are plain sub-attribute names of `attr`.
    ValuePath {
        /// The multi-valued attribute, without sub-attribute.
        attr: AttrPath,
        /// The filter applied to each value; it contains no `ValuePath`.
        filter: Box<Filter>,
    },
}

impl Filter {
    /// Parses a filter string, e.g. the `filter` query parameter after URL decoding.
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        Parser::new(input).parse_complete_filter()
    }

    /// `self and other`, flattening nested conjunctions to keep the AST normalized.
    pub fn and(self, other: Filter) -> Filter {
        Filter::And(join_flat(
            self,
            other,
            |f| matches!(f, Filter::And(_)),
            |f| f.into_and(),
        ))
    }

    /// `self or other`, flattening nested disjunctions to keep the AST normalized.
    pub fn or(self, other: Filter) -> Filter {
        Filter::Or(join_flat(
            self,
            other,
            |f| matches!(f, Filter::Or(_)),
            |f| f.into_or(),
        ))
    }

    /// `not (self)`.
    pub fn negate(self) -> Filter {
        Filter::Not(Box::new(self))
    }

    /// How many attribute expressions (`attr op value`, `attr pr`) the filter holds: what
    /// [`MAX_TERMS`] bounds.
    pub fn terms(&self) -> usize {
        match self {
            Filter::Compare { .. } | Filter::Present(_) => 1,
            Filter::And(terms) | Filter::Or(terms) => terms.iter().map(Filter::terms).sum(),
            Filter::Not(inner) => inner.terms(),
            Filter::ValuePath { filter, .. } => filter.terms(),
        }
    }

    /// The attribute paths the filter references, in order of appearance, duplicates kept.
    ///
    /// A value path `emails[type eq "work"]` contributes `emails` and then `emails.type`: paths
    /// inside brackets are resolved against the bracketed attribute (schema included), so
    /// every returned path can be checked against the schema on its own.
    pub fn attribute_paths(&self) -> Vec<AttrPath> {
        let mut out = Vec::new();
        self.collect_paths(None, &mut out);
        out
    }

    fn collect_paths(&self, parent: Option<&AttrPath>, out: &mut Vec<AttrPath>) {
        match self {
            Filter::Compare { path, .. } | Filter::Present(path) => {
                out.push(match parent {
                    None => path.clone(),
                    Some(p) => AttrPath {
                        schema: p.schema.clone(),
                        attr: p.attr.clone(),
                        sub_attr: Some(path.attr.clone()),
                    },
                });
            }
            Filter::And(terms) | Filter::Or(terms) => {
                for t in terms {
                    t.collect_paths(parent, out);
                }
            }
            Filter::Not(inner) => inner.collect_paths(parent, out),
            Filter::ValuePath { attr, filter } => {
                out.push(attr.clone());
                filter.collect_paths(Some(attr), out);
            }
        }
    }

    fn into_and(self) -> Vec<Filter> {
        match self {
            Filter::And(v) => v,
            other => vec![other],
        }
    }

    fn into_or(self) -> Vec<Filter> {
        match self {
            Filter::Or(v) => v,
            other => vec![other],
        }
    }
}

fn join_flat(
    a: Filter,
    b: Filter,
    same_kind: fn(&Filter) -> bool,
    split: fn(Filter) -> Vec<Filter>,
) -> Vec<Filter> {
    let mut terms = if same_kind(&a) { split(a) } else { vec![a] };
    if same_kind(&b) {
        terms.extend(split(b));
    } else {
        terms.push(b);
    }
    terms
}

impl FromStr for Filter {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Filter::Compare { path, op, value } => write!(f, "{path} {op} {value}"),
            Filter::Present(path) => write!(f, "{path} pr"),
            Filter::And(terms) => write_terms(f, terms, " and ", |t| {
                matches!(t, Filter::And(_) | Filter::Or(_))
            }),
            Filter::Or(terms) => write_terms(f, terms, " or ", |t| matches!(t, Filter::Or(_))),
            Filter::Not(inner) => write!(f, "not ({inner})"),
            Filter::ValuePath { attr, filter } => write!(f, "{attr}[{filter}]"),
        }
    }
}

fn write_terms(
    f: &mut fmt::Formatter<'_>,
    terms: &[Filter],
    sep: &str,
    needs_parens: fn(&Filter) -> bool,
) -> fmt::Result {
    for (i, t) in terms.iter().enumerate() {
        if i > 0 {
            f.write_str(sep)?;
        }
        if needs_parens(t) {
            write!(f, "({t})")?;
        } else {
            write!(f, "{t}")?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------------------------

const NUL_IN_STRING: &str = "a NUL character cannot appear in a filter string";

/// Bytes that may appear in an attribute path (schema URN included).
fn is_path_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'$')
}

/// Bytes that continue a word: a keyword followed by one of these is not a keyword.
fn is_word_byte(b: u8) -> bool {
    is_path_byte(b) || b >= 0x80
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Shortens a token quoted in an error message.
fn excerpt(token: &str) -> String {
    const MAX: usize = 32;
    let mut chars = token.chars();
    let head: String = chars.by_ref().take(MAX).collect();
    if chars.next().is_some() {
        format!("{}…", head.escape_debug())
    } else {
        head.escape_debug().to_string()
    }
}

/// A recursive-descent parser over a `&str`; `pos` is always on a char boundary.
pub(crate) struct Parser<'a> {
    src: &'a str,
    pub(crate) pos: usize,
    /// Attribute expressions read so far, against [`MAX_TERMS`].
    terms: usize,
}

impl<'a> Parser<'a> {
    pub(crate) fn new(src: &'a str) -> Self {
        Self {
            src,
            pos: 0,
            terms: 0,
        }
    }

    /// Counts one more attribute expression starting at `at`, or refuses one too many.
    fn count_term(&mut self, at: usize) -> Result<(), ParseError> {
        self.terms += 1;
        if self.terms > MAX_TERMS {
            return Err(ParseError::new(
                at,
                format!("filter has more than the maximum of {MAX_TERMS} attribute expressions"),
            ));
        }
        Ok(())
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.src.as_bytes().get(self.pos).copied()
    }

    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.src.len()
    }

    fn skip_ws(&mut self) {
        while let Some(b) = self.peek()
            && is_ws(b)
        {
            self.pos += 1;
        }
    }

    /// Consumes `kw` (ASCII, case-insensitive) if it is at `pos` as a whole word.
    fn eat_keyword(&mut self, kw: &str) -> bool {
        let bytes = self.src.as_bytes();
        let end = self.pos + kw.len();
        let matches = bytes
            .get(self.pos..end)
            .is_some_and(|w| w.eq_ignore_ascii_case(kw.as_bytes()))
            && bytes.get(end).is_none_or(|&b| !is_word_byte(b));
        if matches {
            self.pos = end;
        }
        matches
    }

    /// Whether `pos` starts `not (`, i.e. a negated group rather than an attribute named `not`.
    fn at_not_group(&self) -> bool {
        let bytes = self.src.as_bytes();
        if !bytes
            .get(self.pos..self.pos + 3)
            .is_some_and(|w| w.eq_ignore_ascii_case(b"not"))
        {
            return false;
        }
        let mut i = self.pos + 3;
        while bytes.get(i).is_some_and(|&b| is_ws(b)) {
            i += 1;
        }
        bytes.get(i) == Some(&b'(')
    }

    fn check_depth(&self, depth: usize, at: usize) -> Result<(), ParseError> {
        if depth >= MAX_DEPTH {
            return Err(ParseError::new(
                at,
                format!("filter nesting exceeds the maximum depth of {MAX_DEPTH}"),
            ));
        }
        Ok(())
    }

    /// Skips whitespace and consumes the closing `close`, or reports what was expected.
    fn expect_close(&mut self, close: u8) -> Result<(), ParseError> {
        self.skip_ws();
        if self.peek() == Some(close) {
            self.pos += 1;
            Ok(())
        } else {
            Err(ParseError::new(
                self.pos,
                format!("expected 'and', 'or' or '{}'", close as char),
            ))
        }
    }

    /// Parses the whole input as one filter.
    fn parse_complete_filter(mut self) -> Result<Filter, ParseError> {
        let filter = self.parse_or(0, false)?;
        self.skip_ws();
        match self.peek() {
            None => Ok(filter),
            Some(b')') => Err(ParseError::new(self.pos, "unmatched ')'")),
            Some(b']') => Err(ParseError::new(self.pos, "unmatched ']'")),
            Some(_) => Err(ParseError::new(
                self.pos,
                "expected 'and', 'or' or end of filter",
            )),
        }
    }

    /// `or`-expression: the lowest precedence level.
    fn parse_or(&mut self, depth: usize, in_vf: bool) -> Result<Filter, ParseError> {
        let mut terms = Vec::new();
        let first = self.parse_and(depth, in_vf)?;
        terms.extend(first.into_or());
        loop {
            self.skip_ws();
            if !self.eat_keyword("or") {
                break;
            }
            let next = self.parse_and(depth, in_vf)?;
            terms.extend(next.into_or());
        }
        Ok(collapse(terms, Filter::Or))
    }

    /// `and`-expression.
    fn parse_and(&mut self, depth: usize, in_vf: bool) -> Result<Filter, ParseError> {
        let mut terms = Vec::new();
        let first = self.parse_unary(depth, in_vf)?;
        terms.extend(first.into_and());
        loop {
            self.skip_ws();
            if !self.eat_keyword("and") {
                break;
            }
            let next = self.parse_unary(depth, in_vf)?;
            terms.extend(next.into_and());
        }
        Ok(collapse(terms, Filter::And))
    }

    /// A group `(…)`, a negated group `not (…)`, an attribute expression or a value path.
    fn parse_unary(&mut self, depth: usize, in_vf: bool) -> Result<Filter, ParseError> {
        self.skip_ws();
        let start = self.pos;
        if self.peek() == Some(b'(') {
            self.check_depth(depth, start)?;
            self.pos += 1;
            let inner = self.parse_or(depth + 1, in_vf)?;
            self.expect_close(b')')?;
            return Ok(inner);
        }
        if self.at_not_group() {
            self.pos += 3;
            self.skip_ws();
            self.check_depth(depth, self.pos)?;
            self.pos += 1;
            let inner = self.parse_or(depth + 1, in_vf)?;
            self.expect_close(b')')?;
            return Ok(Filter::Not(Box::new(inner)));
        }
        self.parse_attr_expr(depth, in_vf)
    }

    /// `attrPath pr`, `attrPath op value` or `attrPath[valFilter]`.
    fn parse_attr_expr(&mut self, depth: usize, in_vf: bool) -> Result<Filter, ParseError> {
        let start = self.pos;
        let path = self.parse_attr_path()?;
        if in_vf && (path.schema.is_some() || path.sub_attr.is_some()) {
            return Err(ParseError::new(
                start,
                "attribute paths inside a value filter must be plain sub-attribute names",
            ));
        }
        if self.peek() == Some(b'[') {
            if in_vf {
                return Err(ParseError::new(self.pos, "value filters cannot be nested"));
            }
            if path.sub_attr.is_some() {
                return Err(ParseError::new(
                    self.pos,
                    "a value filter must follow a top-level attribute, not a sub-attribute",
                ));
            }
            let filter = self.parse_value_filter(depth)?;
            if self.peek() == Some(b'.') {
                return Err(ParseError::new(
                    self.pos,
                    "a sub-attribute after a value filter is only allowed in PATCH paths",
                ));
            }
            return Ok(Filter::ValuePath {
                attr: path,
                filter: Box::new(filter),
            });
        }
        let is_bare_not = path.schema.is_none()
            && path.sub_attr.is_none()
            && path.attr.eq_ignore_ascii_case("not");
        self.skip_ws();
        let op_start = self.pos;
        let bytes = self.src.as_bytes();
        let mut end = op_start;
        while bytes
            .get(end)
            .is_some_and(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            end += 1;
        }
        let word = &self.src[op_start..end];
        if word.eq_ignore_ascii_case("pr") {
            self.count_term(start)?;
            self.pos = end;
            return Ok(Filter::Present(path));
        }
        if let Some(op) = CompareOp::from_keyword(word) {
            self.count_term(start)?;
            self.pos = end;
            self.skip_ws();
            let value = self.parse_value()?;
            return Ok(Filter::Compare { path, op, value });
        }
        if is_bare_not {
            return Err(ParseError::new(op_start, "expected '(' after 'not'"));
        }
        if word.is_empty() {
            return Err(ParseError::new(
                op_start,
                "expected comparison operator after attribute path",
            ));
        }
        Err(ParseError::new(
            op_start,
            format!("unknown comparison operator '{}'", excerpt(word)),
        ))
    }

    /// `[valFilter]` with `pos` on the `[`; returns the inner filter.
    pub(crate) fn parse_value_filter(&mut self, depth: usize) -> Result<Filter, ParseError> {
        self.check_depth(depth, self.pos)?;
        self.pos += 1;
        let inner = self.parse_or(depth + 1, true)?;
        self.expect_close(b']')?;
        Ok(inner)
    }

    /// `[URI ":"] ATTRNAME ["." ATTRNAME]` at `pos`.
    pub(crate) fn parse_attr_path(&mut self) -> Result<AttrPath, ParseError> {
        let start = self.pos;
        let end = self.path_run_end();
        if end == start {
            return Err(ParseError::new(start, "expected attribute path"));
        }
        self.pos = end;
        let text = &self.src[start..end];
        let (schema, names, names_at) = match text.rfind(':') {
            Some(0) => return Err(ParseError::new(start, "expected schema URN before ':'")),
            Some(i) => (Some(&text[..i]), &text[i + 1..], start + i + 1),
            None => (None, text, start),
        };
        if names.is_empty() && schema.is_some() {
            return Err(ParseError::new(
                names_at,
                "expected attribute name after schema URN",
            ));
        }
        let (attr, sub) = match names.find('.') {
            None => (names, None),
            Some(d) => (&names[..d], Some((&names[d + 1..], names_at + d + 1))),
        };
        validate_name(attr, names_at, "attribute")?;
        let sub_attr = match sub {
            None => None,
            Some((s, at)) => Some(validate_sub_attr(s, at)?.to_owned()),
        };
        Ok(AttrPath {
            schema: schema.map(str::to_owned),
            attr: attr.to_owned(),
            sub_attr,
        })
    }

    /// The sub-attribute name after `].` in a PATCH path, with `pos` just after the `.`.
    pub(crate) fn parse_sub_attr_name(&mut self) -> Result<String, ParseError> {
        let start = self.pos;
        let end = self.path_run_end();
        self.pos = end;
        let text = &self.src[start..end];
        if let Some(i) = text.find(':') {
            return Err(ParseError::new(
                start + i,
                "unexpected ':' in sub-attribute name",
            ));
        }
        Ok(validate_sub_attr(text, start)?.to_owned())
    }

    /// End of the run of attribute-path bytes starting at `pos` (ASCII, so a char boundary).
    fn path_run_end(&self) -> usize {
        let bytes = self.src.as_bytes();
        let mut end = self.pos;
        while bytes.get(end).is_some_and(|&b| is_path_byte(b)) {
            end += 1;
        }
        end
    }

    /// A comparison value at `pos`.
    fn parse_value(&mut self) -> Result<CompValue, ParseError> {
        let start = self.pos;
        match self.peek() {
            None => Err(ParseError::new(start, "expected comparison value")),
            Some(b'"') => Ok(CompValue::String(self.parse_string()?)),
            Some(_) => {
                let bytes = self.src.as_bytes();
                let mut end = start;
                while bytes
                    .get(end)
                    .is_some_and(|&b| !is_ws(b) && !matches!(b, b'(' | b')' | b'[' | b']' | b'"'))
                {
                    end += 1;
                }
                if end == start {
                    return Err(ParseError::new(start, "expected comparison value"));
                }
                // `end` stops at an ASCII byte or the end of input: a char boundary.
                let token = &self.src[start..end];
                self.pos = end;
                if token.eq_ignore_ascii_case("true") {
                    Ok(CompValue::Bool(true))
                } else if token.eq_ignore_ascii_case("false") {
                    Ok(CompValue::Bool(false))
                } else if token.eq_ignore_ascii_case("null") {
                    Ok(CompValue::Null)
                } else if is_json_number(token.as_bytes()) {
                    json_number(token)
                        .map(CompValue::Number)
                        .ok_or_else(|| ParseError::new(start, "number out of range"))
                } else {
                    Err(ParseError::new(
                        start,
                        format!(
                            "invalid comparison value '{}' (strings must be double-quoted)",
                            excerpt(token)
                        ),
                    ))
                }
            }
        }
    }

    /// A JSON string with `pos` on the opening quote; returns it unescaped.
    fn parse_string(&mut self) -> Result<String, ParseError> {
        let start = self.pos;
        let bytes = self.src.as_bytes();
        let mut out = String::new();
        let mut i = start + 1;
        loop {
            let run = i;
            while bytes.get(i).is_some_and(|&b| b != b'"' && b != b'\\') {
                i += 1;
            }
            // `i` is on an ASCII byte or the end of input: a char boundary.
            if let Some(nul) = self.src[run..i].find('\0') {
                return Err(ParseError::new(run + nul, NUL_IN_STRING));
            }
            out.push_str(&self.src[run..i]);
            match bytes.get(i) {
                None => return Err(ParseError::new(start, "unterminated string")),
                Some(b'"') => {
                    self.pos = i + 1;
                    return Ok(out);
                }
                Some(_) => {
                    let esc = i;
                    let Some(&kind) = bytes.get(i + 1) else {
                        return Err(ParseError::new(start, "unterminated string"));
                    };
                    i += 2;
                    match kind {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let (c, next) = self.unicode_escape(esc)?;
                            if c == '\0' {
                                return Err(ParseError::new(esc, NUL_IN_STRING));
                            }
                            out.push(c);
                            i = next;
                        }
                        _ => {
                            let c = self.src[esc + 1..].chars().next().unwrap_or('?');
                            return Err(ParseError::new(
                                esc,
                                format!("invalid escape sequence '\\{}'", c.escape_debug()),
                            ));
                        }
                    }
                }
            }
        }
    }

    /// Decodes `\uXXXX` (and a following low surrogate) at `esc`; returns the char and the
    /// offset after the escape.
    fn unicode_escape(&self, esc: usize) -> Result<(char, usize), ParseError> {
        let hi = self.hex4(esc + 2).ok_or_else(|| {
            ParseError::new(esc, "invalid unicode escape: expected four hex digits")
        })?;
        let unpaired = || ParseError::new(esc, "invalid unicode escape: unpaired surrogate");
        match hi {
            0xD800..=0xDBFF => {
                let bytes = self.src.as_bytes();
                let lo_at = esc + 6;
                if bytes.get(lo_at) != Some(&b'\\') || bytes.get(lo_at + 1) != Some(&b'u') {
                    return Err(unpaired());
                }
                let lo = self.hex4(lo_at + 2).ok_or_else(|| {
                    ParseError::new(lo_at, "invalid unicode escape: expected four hex digits")
                })?;
                if !(0xDC00..=0xDFFF).contains(&lo) {
                    return Err(unpaired());
                }
                let c = char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
                    .ok_or_else(unpaired)?;
                Ok((c, lo_at + 6))
            }
            0xDC00..=0xDFFF => Err(unpaired()),
            _ => Ok((char::from_u32(hi).ok_or_else(unpaired)?, esc + 6)),
        }
    }

    /// Four ASCII hex digits at `at`, as a number.
    fn hex4(&self, at: usize) -> Option<u32> {
        let digits = self.src.as_bytes().get(at..at + 4)?;
        digits
            .iter()
            .try_fold(0u32, |acc, &b| Some(acc * 16 + (b as char).to_digit(16)?))
    }
}

fn collapse(mut terms: Vec<Filter>, make: fn(Vec<Filter>) -> Filter) -> Filter {
    if terms.len() == 1
        && let Some(only) = terms.pop()
    {
        return only;
    }
    make(terms)
}

/// `["$"] ALPHA *(ALPHA / DIGIT / "-" / "_")`, reporting errors at `at + index`.
fn validate_name(name: &str, at: usize, what: &str) -> Result<(), ParseError> {
    let bytes = name.as_bytes();
    let body = usize::from(bytes.first() == Some(&b'$'));
    match bytes.get(body) {
        None if body == 0 => return Err(ParseError::new(at, format!("expected {what} name"))),
        Some(b) if b.is_ascii_alphabetic() => {}
        _ => {
            return Err(ParseError::new(
                at + body,
                format!("{what} name must start with a letter"),
            ));
        }
    }
    for (i, &b) in bytes.iter().enumerate().skip(body + 1) {
        if !(b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(ParseError::new(
                at + i,
                format!("invalid character '{}' in {what} name", b as char),
            ));
        }
    }
    Ok(())
}

/// A sub-attribute name: one level only.
fn validate_sub_attr(s: &str, at: usize) -> Result<&str, ParseError> {
    if s.is_empty() || s.starts_with('.') {
        return Err(ParseError::new(at, "expected sub-attribute name after '.'"));
    }
    if let Some(d) = s.find('.') {
        return Err(ParseError::new(
            at + d,
            "attribute path has more than one sub-attribute level",
        ));
    }
    validate_name(s, at, "sub-attribute")?;
    Ok(s)
}

/// The value of a token that [`is_json_number`]: an integer when it has no fraction or
/// exponent and fits 64 bits, else the correctly rounded `f64` (`None` when infinite), so the
/// shortest form `Display` prints for it parses back to the same number.
fn json_number(token: &str) -> Option<Number> {
    if !token.contains(['.', 'e', 'E']) {
        if let Ok(n) = token.parse::<u64>() {
            return Some(n.into());
        }
        if let Ok(n) = token.parse::<i64>() {
            return Some(n.into());
        }
    }
    token.parse::<f64>().ok().and_then(Number::from_f64)
}

/// Whether `b` is exactly a JSON number (RFC 8259 §6).
fn is_json_number(b: &[u8]) -> bool {
    let digits = |mut i: usize| {
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        i
    };
    let mut i = usize::from(b.first() == Some(&b'-'));
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => i = digits(i + 1),
        _ => return false,
    }
    if b.get(i) == Some(&b'.') {
        let after = digits(i + 1);
        if after == i + 1 {
            return false;
        }
        i = after;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let after = digits(i);
        if after == i {
            return false;
        }
        i = after;
    }
    i == b.len()
}

#[cfg(test)]
pub(crate) mod tests;
