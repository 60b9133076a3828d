//! HR roster import: the column mapping, a row parser with errors located by line and column,
//! and the diff of a full roster against the people tenure knows, as lifecycle events.
//!
//! The roster is the full current list of people. Whoever tenure knows but the roster lacks
//! leaves; new ids are hired; terminated people who are back are rehired; changed attributes
//! become `transfer` (name, email, department, title, location, manager) and `contract_change`
//! (worker type, start date, end date) events.
//!
//! Built to stream: [`Differ`] keeps per person only a fingerprint of the compared fields, so a
//! roster of a million rows is diffed in two passes over the file (see [`Differ`]) with memory
//! that grows with the number of people, not with the file. Events come out in a fixed order —
//! leaves (by id), then hires, rehires, transfers and contract changes, each in file order —
//! and their ids are derived from the file's hash and the event's content, so importing the
//! same file twice is idempotent through the API's event ids.

use crate::event::{EventInput, EventType, PersonInput, validate_event};
use crate::model::{Person, PersonStatus, WorkerType};
use chrono::NaiveDate;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::collections::VecDeque;
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Read;

/// One field of a roster row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    /// The HR id (required).
    Id,
    /// Display name (required).
    Name,
    /// Work email (required).
    Email,
    /// employee, contractor or partner (required).
    WorkerType,
    /// Department.
    Department,
    /// Job title.
    Title,
    /// Location.
    Location,
    /// The manager's HR id.
    Manager,
    /// First working day, `YYYY-MM-DD`.
    StartDate,
    /// Last working day, `YYYY-MM-DD`.
    EndDate,
}

impl Field {
    /// Every field, in the default column order.
    pub const ALL: [Field; 10] = [
        Field::Id,
        Field::Name,
        Field::Email,
        Field::WorkerType,
        Field::Department,
        Field::Title,
        Field::Location,
        Field::Manager,
        Field::StartDate,
        Field::EndDate,
    ];

    /// The field's name, also its default CSV header.
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Id => "id",
            Field::Name => "name",
            Field::Email => "email",
            Field::WorkerType => "worker_type",
            Field::Department => "department",
            Field::Title => "title",
            Field::Location => "location",
            Field::Manager => "manager",
            Field::StartDate => "start_date",
            Field::EndDate => "end_date",
        }
    }

    /// The field named `name`, if any.
    pub fn parse(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.as_str() == name)
    }

    /// Whether every roster must have this column.
    pub fn is_required(self) -> bool {
        matches!(
            self,
            Field::Id | Field::Name | Field::Email | Field::WorkerType
        )
    }

    /// Whether a change of this field is a `contract_change` (else a `transfer`).
    pub fn is_contract(self) -> bool {
        matches!(self, Field::WorkerType | Field::StartDate | Field::EndDate)
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which CSV header holds each field. Headers match case-insensitively, ignoring surrounding
/// spaces; columns the mapping does not name are ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnMap {
    headers: [String; 10],
    explicit: [bool; 10],
}

impl Default for ColumnMap {
    /// `id,name,email,worker_type,department,title,location,manager,start_date,end_date`.
    fn default() -> Self {
        ColumnMap {
            headers: Field::ALL.map(|f| f.as_str().to_string()),
            explicit: [false; 10],
        }
    }
}

impl ColumnMap {
    /// The header that holds `field`.
    pub fn header(&self, field: Field) -> &str {
        &self.headers[field.index()]
    }

    /// Reads `field` from the column headed `header`. A column named explicitly must be in
    /// the file, even for an optional field.
    pub fn set(&mut self, field: Field, header: impl Into<String>) {
        self.headers[field.index()] = header.into();
        self.explicit[field.index()] = true;
    }

    /// Finds every mapped column in the file's header row.
    pub fn resolve(&self, header: &csv::ByteRecord) -> Result<Columns, HeaderError> {
        let names: Vec<String> = header
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let h = String::from_utf8_lossy(h);
                let h = if i == 0 {
                    h.trim_start_matches('\u{feff}')
                } else {
                    &h
                };
                h.trim().to_string()
            })
            .collect();
        let mut pos = [None; 10];
        let mut missing = Vec::new();
        for field in Field::ALL {
            let wanted = self.header(field).trim().to_lowercase();
            let found: Vec<usize> = names
                .iter()
                .enumerate()
                .filter(|(_, n)| n.to_lowercase() == wanted)
                .map(|(i, _)| i)
                .collect();
            match found.as_slice() {
                [] if field.is_required() || self.explicit[field.index()] => {
                    missing.push(format!("`{}` ({field})", self.header(field)));
                }
                [] => {}
                [i] => pos[field.index()] = Some(*i),
                [a, b, ..] => {
                    return Err(HeaderError(format!(
                        "the header has column `{}` ({field}) twice, as columns {} and {}",
                        names[*a],
                        a + 1,
                        b + 1
                    )));
                }
            }
        }
        if !missing.is_empty() {
            let shown: Vec<String> = names.iter().take(40).map(|n| format!("`{n}`")).collect();
            return Err(HeaderError(format!(
                "the header lacks column{} {}; it has: {}{}",
                if missing.len() > 1 { "s" } else { "" },
                missing.join(", "),
                if shown.is_empty() {
                    "nothing".to_string()
                } else {
                    shown.join(", ")
                },
                if names.len() > 40 { ", ..." } else { "" }
            )));
        }
        let labels = Field::ALL.map(|f| match pos[f.index()] {
            Some(i) => names[i].clone(),
            None => self.header(f).to_string(),
        });
        Ok(Columns {
            pos,
            labels,
            width: names.len(),
        })
    }
}

/// The header row does not fit the column mapping; nothing can be imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HeaderError(pub String);

/// The mapping resolved against one file's header row: where each field is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Columns {
    pos: [Option<usize>; 10],
    labels: [String; 10],
    width: usize,
}

/// One good roster row: the person as a hire would carry them.
#[derive(Debug, Clone, PartialEq)]
pub struct RosterRow {
    /// The line the row starts on (the header is line 1).
    pub line: u64,
    /// The person: `name`, `email` and `worker_type` are always set; empty optional cells are
    /// `None` (an empty cell never clears a stored value: events cannot express that).
    pub person: PersonInput,
}

/// A row that cannot be imported, located by line and column (the header as the file spells
/// it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// The line the row starts on.
    pub line: u64,
    /// The column at fault.
    pub column: String,
    /// What is wrong.
    pub reason: String,
    /// The row's id when it could be read: that person is in the roster, so never a leaver.
    pub id: Option<String>,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.reason)
    }
}

impl Columns {
    /// The header (as spelled in the file) of `field`'s column, or the mapped name when the
    /// file has no such column.
    pub fn label(&self, field: Field) -> &str {
        &self.labels[field.index()]
    }

    /// Whether the file has a column for `field`.
    pub fn has(&self, field: Field) -> bool {
        self.pos[field.index()].is_some()
    }

    /// Parses one record starting on `line` into a row, or says precisely what is wrong with
    /// it (the first problem, in column order).
    pub fn parse(&self, record: &csv::ByteRecord, line: u64) -> Result<RosterRow, RowError> {
        // The id first: a bad row with a readable id still marks that person as present.
        let id = self.text(record, Field::Id).ok().flatten();
        let id = id.filter(|i| check_person_id(i).is_none());
        let err = |field: Field, reason: String| RowError {
            line,
            column: self.label(field).to_string(),
            reason,
            id: id.clone(),
        };
        if record.len() != self.width {
            let column = if record.len() < self.width {
                // The first mapped column the row lacks, else the first it lacks.
                Field::ALL
                    .into_iter()
                    .find(|f| self.pos[f.index()].is_some_and(|p| p >= record.len()))
                    .map(|f| self.label(f).to_string())
                    .unwrap_or_else(|| format!("column {}", record.len() + 1))
            } else {
                format!("column {}", self.width + 1)
            };
            return Err(RowError {
                line,
                column,
                reason: format!(
                    "the row has {} fields, the header has {} (a stray or missing comma? quote values that contain commas)",
                    record.len(),
                    self.width
                ),
                id: id.clone(),
            });
        }
        let mut p = PersonInput::default();
        for field in Field::ALL {
            let value = self.text(record, field).map_err(|r| err(field, r))?;
            match field {
                Field::Id => match value {
                    None => return Err(err(field, "missing id".into())),
                    Some(v) => {
                        if let Some(reason) = check_person_id(&v) {
                            return Err(err(field, format!("`{v}` is not a valid id: {reason}")));
                        }
                        p.id = v;
                    }
                },
                Field::Name => match value {
                    None => return Err(err(field, "missing name".into())),
                    Some(v) => p.name = Some(v),
                },
                Field::Email => match value {
                    None => return Err(err(field, "missing email".into())),
                    Some(v) => {
                        let probe = EventInput {
                            id: None,
                            kind: EventType::Transfer,
                            person: PersonInput {
                                id: "probe".into(),
                                email: Some(v.clone()),
                                ..Default::default()
                            },
                            engagement: None,
                            effective_at: None,
                            source: None,
                        };
                        if let Err(e) = validate_event(&probe) {
                            return Err(err(field, e.message));
                        }
                        p.email = Some(v);
                    }
                },
                Field::WorkerType => match value {
                    None => {
                        return Err(err(
                            field,
                            "missing worker type (employee, contractor or partner)".into(),
                        ));
                    }
                    Some(v) => match v.to_lowercase().parse::<WorkerType>() {
                        Ok(w) => p.worker_type = Some(w),
                        Err(_) => {
                            return Err(err(
                                field,
                                format!(
                                    "unknown worker type `{v}`, expected employee, contractor or partner"
                                ),
                            ));
                        }
                    },
                },
                Field::Department => p.department = value,
                Field::Title => p.title = value,
                Field::Location => p.location = value,
                Field::Manager => {
                    if let Some(v) = &value
                        && let Some(reason) = check_person_id(v)
                    {
                        return Err(err(
                            field,
                            format!("`{v}` is not a valid manager id: {reason}"),
                        ));
                    }
                    p.manager = value;
                }
                Field::StartDate => {
                    p.start_date = value
                        .map(|v| parse_date(&v))
                        .transpose()
                        .map_err(|r| err(field, r))?;
                }
                Field::EndDate => {
                    p.end_date = value
                        .map(|v| parse_date(&v))
                        .transpose()
                        .map_err(|r| err(field, r))?;
                    if let (Some(s), Some(e)) = (p.start_date, p.end_date)
                        && e < s
                    {
                        return Err(err(
                            field,
                            format!(
                                "{e} is before the start date {s} (in column `{}`)",
                                self.label(Field::StartDate)
                            ),
                        ));
                    }
                }
            }
        }
        // Belt and braces: the row must make a hire the API accepts.
        let hire = EventInput {
            id: None,
            kind: EventType::Hire,
            person: p.clone(),
            engagement: None,
            effective_at: None,
            source: None,
        };
        if let Err(e) = validate_event(&hire) {
            let field = e
                .field
                .strip_prefix("person.")
                .and_then(Field::parse)
                .unwrap_or(Field::Id);
            return Err(err(field, e.message));
        }
        Ok(RosterRow { line, person: p })
    }

    /// The trimmed text of `field` (`None` when the cell is empty or the file has no such
    /// column); an error when it is not UTF-8.
    fn text(&self, record: &csv::ByteRecord, field: Field) -> Result<Option<String>, String> {
        let Some(bytes) = self.pos[field.index()].and_then(|i| record.get(i)) else {
            return Ok(None);
        };
        let s = std::str::from_utf8(bytes).map_err(|e| {
            format!(
                "not valid UTF-8 (byte {} of the cell); save the file as UTF-8",
                e.valid_up_to() + 1
            )
        })?;
        let s = s.trim();
        Ok((!s.is_empty()).then(|| s.to_string()))
    }
}

/// Why `id` cannot be a person id (the API's rules), or `None` when it can.
fn check_person_id(id: &str) -> Option<String> {
    let probe = EventInput {
        id: None,
        kind: EventType::Leave,
        person: PersonInput {
            id: id.to_string(),
            ..Default::default()
        },
        engagement: None,
        effective_at: None,
        source: None,
    };
    validate_event(&probe).err().map(|e| e.message)
}

/// A strict `YYYY-MM-DD` date.
fn parse_date(s: &str) -> Result<NaiveDate, String> {
    let b = s.as_bytes();
    let shape = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shape {
        return Err(format!("`{s}` is not a date; write it as YYYY-MM-DD"));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| format!("`{s}` is not a valid date (YYYY-MM-DD)"))
}

/// Reads a roster record by record, with the line each record starts on.
///
/// The CSV parser skips blank lines and reports a record's position from where it began
/// looking (before any blank lines, and mid-`\r\n`), so lines are counted here: the input is
/// read through a tracker that notes where line breaks are, and forgets them once records
/// have moved past.
pub struct RosterReader<R> {
    csv: csv::Reader<LineTracker<R>>,
    record: csv::ByteRecord,
    header: csv::ByteRecord,
    /// The line at `csv`'s oldest remembered break.
    line: u64,
}

struct LineTracker<R> {
    inner: R,
    offset: u64,
    /// Offsets of `\r` (false) and `\n` (true) not yet behind a record start.
    breaks: VecDeque<(u64, bool)>,
}

impl<R: Read> Read for LineTracker<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        for (i, b) in buf[..n].iter().enumerate() {
            if *b == b'\n' || *b == b'\r' {
                self.breaks.push_back((self.offset + i as u64, *b == b'\n'));
            }
        }
        self.offset += n as u64;
        Ok(n)
    }
}

impl<R: Read> RosterReader<R> {
    /// Starts reading `input` and reads its header row.
    pub fn new(input: R) -> Result<RosterReader<R>, csv::Error> {
        let mut csv = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .buffer_capacity(1 << 16)
            .from_reader(LineTracker {
                inner: input,
                offset: 0,
                breaks: VecDeque::new(),
            });
        let header = csv.byte_headers()?.clone();
        Ok(RosterReader {
            csv,
            record: csv::ByteRecord::new(),
            header,
            line: 1,
        })
    }

    /// The header row.
    pub fn header(&self) -> &csv::ByteRecord {
        &self.header
    }

    /// The next record that is not a blank line, with the line it starts on.
    pub fn next_record(&mut self) -> Result<Option<(u64, &csv::ByteRecord)>, csv::Error> {
        loop {
            if !self.csv.read_byte_record(&mut self.record)? {
                return Ok(None);
            }
            if self
                .record
                .iter()
                .all(|f| f.iter().all(u8::is_ascii_whitespace))
            {
                continue;
            }
            let start = self.record.position().map_or(0, |p| p.byte());
            let breaks = &mut self.csv.get_mut().breaks;
            while let Some(&(at, newline)) = breaks.front() {
                if at >= start {
                    break;
                }
                self.line += u64::from(newline);
                breaks.pop_front();
            }
            // Skip what the parser skipped: the blank lines (only line breaks) at the start.
            let skipped = (start..)
                .zip(breaks.iter())
                .take_while(|(cursor, (at, _))| at == cursor)
                .filter(|(_, (_, newline))| *newline)
                .count();
            return Ok(Some((self.line + skipped as u64, &self.record)));
        }
    }

    /// The input, where the parser left it.
    pub fn into_inner(self) -> R {
        self.csv.into_inner().inner
    }
}

// ---------------------------------------------------------------- the diff

/// The compared fields of a known person, reduced to 64-bit fingerprints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    fields: [u64; 9],
    status: PersonStatus,
}

fn fingerprint<T: Hash + ?Sized>(v: &T) -> u64 {
    let mut h = DefaultHasher::new();
    v.hash(&mut h);
    h.finish()
}

impl Known {
    /// The fingerprint of a stored person.
    pub fn of(p: &Person) -> Known {
        let mut fields = [0; 9];
        for f in &Field::ALL[1..] {
            fields[f.index() - 1] = match f {
                Field::Id => unreachable!("the id is the key"),
                Field::Name => fingerprint(&Some(p.name.as_str())),
                Field::Email => fingerprint(&Some(p.email.as_str())),
                Field::WorkerType => fingerprint(&Some(p.worker_type)),
                Field::Department => fingerprint(&p.department.as_deref()),
                Field::Title => fingerprint(&p.title.as_deref()),
                Field::Location => fingerprint(&p.location.as_deref()),
                Field::Manager => fingerprint(&p.manager.as_deref()),
                Field::StartDate => fingerprint(&p.start_date),
                Field::EndDate => fingerprint(&p.end_date),
            };
        }
        Known {
            fields,
            status: p.status,
        }
    }

    /// The given fields of `row` whose values differ from this person's, in field order.
    fn changed(&self, row: &PersonInput) -> Vec<Field> {
        let given = |f: Field| -> Option<u64> {
            match f {
                Field::Id => None,
                Field::Name => row.name.as_deref().map(|v| fingerprint(&Some(v))),
                Field::Email => row.email.as_deref().map(|v| fingerprint(&Some(v))),
                Field::WorkerType => row.worker_type.map(|v| fingerprint(&Some(v))),
                Field::Department => row.department.as_deref().map(|v| fingerprint(&Some(v))),
                Field::Title => row.title.as_deref().map(|v| fingerprint(&Some(v))),
                Field::Location => row.location.as_deref().map(|v| fingerprint(&Some(v))),
                Field::Manager => row.manager.as_deref().map(|v| fingerprint(&Some(v))),
                Field::StartDate => row.start_date.map(|v| fingerprint(&Some(v))),
                Field::EndDate => row.end_date.map(|v| fingerprint(&Some(v))),
            }
        };
        Field::ALL[1..]
            .iter()
            .copied()
            .filter(|f| given(*f).is_some_and(|h| h != self.fields[f.index() - 1]))
            .collect()
    }
}

const HIRE: u8 = 1;
const REHIRE: u8 = 2;
const TRANSFER: u8 = 4;
const CONTRACT: u8 = 8;
/// The first row with this id parsed fine (its events are the ones emitted).
const FIRST_OK: u8 = 16;

fn bit(kind: EventType) -> u8 {
    match kind {
        EventType::Hire => HIRE,
        EventType::Rehire => REHIRE,
        EventType::Transfer => TRANSFER,
        EventType::ContractChange => CONTRACT,
        _ => 0,
    }
}

#[derive(Debug)]
struct Entry {
    known: Option<Box<Known>>,
    /// The line of the first row with this id; 0 while the roster has not shown it.
    line: u64,
    flags: u8,
}

/// The per-kind order events are emitted in after the leaves.
pub const ROW_KINDS: [EventType; 4] = [
    EventType::Hire,
    EventType::Rehire,
    EventType::Transfer,
    EventType::ContractChange,
];

/// What an import would do, known after the first pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// People to terminate (known, not terminated nor already leaving, absent), by id.
    pub leaves: Vec<String>,
    /// New ids.
    pub hires: usize,
    /// Terminated people present again.
    pub rehires: usize,
    /// People whose name, email, department, title, location or manager changed.
    pub transfers: usize,
    /// People whose worker type, start date or end date changed.
    pub contract_changes: usize,
    /// Known people who are not terminated: the base of the leave share.
    pub active: usize,
    /// Good rows.
    pub rows: u64,
    /// Bad rows (each reported).
    pub bad_rows: u64,
    /// Bad rows whose id could not be read: they may be anyone.
    pub unidentified: u64,
}

impl Plan {
    /// How many events of `kind` the import sends.
    pub fn count(&self, kind: EventType) -> usize {
        match kind {
            EventType::Leave => self.leaves.len(),
            EventType::Hire => self.hires,
            EventType::Rehire => self.rehires,
            EventType::Transfer => self.transfers,
            EventType::ContractChange => self.contract_changes,
            _ => 0,
        }
    }

    /// Every event the import sends.
    pub fn total(&self) -> usize {
        self.leaves.len() + self.hires + self.rehires + self.transfers + self.contract_changes
    }

    /// Why the import must wait for confirmation, if it must: it would terminate more than
    /// `max_leave_share` of the people, or terminate people while rows without a readable id
    /// (who may be those very people) were skipped.
    pub fn hold(&self, max_leave_share: f64) -> Option<Hold> {
        let leaves = self.leaves.len();
        if leaves == 0 {
            return None;
        }
        let share = leaves as f64 / self.active.max(1) as f64;
        if share > max_leave_share {
            return Some(Hold::TooManyLeaves {
                leaves,
                active: self.active,
                share,
                max_share: max_leave_share,
            });
        }
        if self.unidentified > 0 {
            return Some(Hold::Unidentified {
                leaves,
                rows: self.unidentified,
            });
        }
        None
    }
}

/// Why an import is held for confirmation.
#[derive(Debug, Clone, PartialEq)]
pub enum Hold {
    /// More leaves than the configured share.
    TooManyLeaves {
        /// People the roster would terminate.
        leaves: usize,
        /// Known people not terminated.
        active: usize,
        /// `leaves / active`.
        share: f64,
        /// The configured limit.
        max_share: f64,
    },
    /// Leaves while some rows had no readable id.
    Unidentified {
        /// People the roster would terminate.
        leaves: usize,
        /// Rows without a readable id.
        rows: u64,
    },
}

impl fmt::Display for Hold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hold::TooManyLeaves {
                leaves,
                active,
                share,
                max_share,
            } => write!(
                f,
                "the roster would terminate {leaves} of {active} people ({:.1}%), more than max_leave_share {}%",
                share * 100.0,
                max_share * 100.0
            ),
            Hold::Unidentified { leaves, rows } => write!(
                f,
                "the roster would terminate {leaves} people while {rows} row(s) have no readable id and may be some of them"
            ),
        }
    }
}

/// One event with the fields that made it, for display.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The event to send.
    pub event: EventInput,
    /// The changed fields (hire and rehire: every given field; leave: none).
    pub fields: Vec<Field>,
}

impl fmt::Display for Change {
    /// `transfer E003 title="Staff Engineer" manager="E001"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.event.kind, self.event.person.id)?;
        for field in &self.fields {
            if let Some(v) = field_value(&self.event.person, *field) {
                write!(f, " {field}={v:?}")?;
            }
        }
        Ok(())
    }
}

/// The text of `field` in `p`, if given.
pub fn field_value(p: &PersonInput, field: Field) -> Option<String> {
    match field {
        Field::Id => Some(p.id.clone()),
        Field::Name => p.name.clone(),
        Field::Email => p.email.clone(),
        Field::WorkerType => p.worker_type.map(|w| w.as_str().to_string()),
        Field::Department => p.department.clone(),
        Field::Title => p.title.clone(),
        Field::Location => p.location.clone(),
        Field::Manager => p.manager.clone(),
        Field::StartDate => p.start_date.map(|d| d.to_string()),
        Field::EndDate => p.end_date.map(|d| d.to_string()),
    }
}

/// The import key of a roster file: the first 16 bytes of its SHA-256, in hex.
pub fn import_key(file_sha256: &[u8]) -> String {
    hex::encode(&file_sha256[..file_sha256.len().min(16)])
}

/// The event id of an import's event: `roster:<import key>:<kind>:<person>:<content hash>`.
/// The same file diffed against the same state gives the same ids (the API answers a repeat as
/// a replay); a different file, or different content, gives new ids. Over 200 characters, the
/// person id is replaced by its hash.
pub fn event_id(import_key: &str, event: &EventInput) -> String {
    let mut body = event.clone();
    body.id = None;
    let canonical = serde_json::to_vec(&body).expect("events serialize");
    let content = hex::encode(&Sha256::digest(&canonical)[..8]);
    let person = &event.person.id;
    let id = format!("roster:{import_key}:{}:{person}:{content}", event.kind);
    if id.len() <= 200 {
        id
    } else {
        let h = hex::encode(&Sha256::digest(person.as_bytes())[..16]);
        format!("roster:{import_key}:{}:h{h}:{content}", event.kind)
    }
}

/// The streaming diff of a roster against the people tenure knows.
///
/// Use: [`know`](Differ::know) every stored person; first pass over the file:
/// [`observe`](Differ::observe) each good row and [`observe_bad`](Differ::observe_bad) each bad
/// one; [`plan`](Differ::plan) says what the import would do (and whether to hold it); then
/// [`leave_events`](Differ::leave_events), and for each kind of [`ROW_KINDS`] another pass over
/// the file with [`event_for`](Differ::event_for) on each good row.
#[derive(Debug, Default)]
pub struct Differ {
    entries: HashMap<Box<str>, Entry>,
    active: usize,
    counts: [usize; 4],
    rows: u64,
    bad_rows: u64,
    unidentified: u64,
}

impl Differ {
    /// An empty differ (no known people).
    pub fn new() -> Differ {
        Differ::default()
    }

    /// Records a stored person.
    pub fn know(&mut self, p: &Person) {
        let known = Box::new(Known::of(p));
        if known.status != PersonStatus::Terminated {
            self.active += 1;
        }
        if let Some(old) = self.entries.insert(
            p.id.as_str().into(),
            Entry {
                known: Some(known),
                line: 0,
                flags: 0,
            },
        ) && old
            .known
            .is_some_and(|k| k.status != PersonStatus::Terminated)
        {
            self.active -= 1;
        }
    }

    /// How many people are known.
    pub fn known_people(&self) -> usize {
        self.active
    }

    /// First pass, good row: marks the person present and decides their events. A second row
    /// with the same id is an error (`id_column` names the column); the first row stands.
    pub fn observe(&mut self, row: &RosterRow, id_column: &str) -> Result<(), RowError> {
        let entry = self
            .entries
            .entry(row.person.id.as_str().into())
            .or_insert(Entry {
                known: None,
                line: 0,
                flags: 0,
            });
        if entry.line != 0 {
            self.bad_rows += 1;
            return Err(RowError {
                line: row.line,
                column: id_column.to_string(),
                reason: format!(
                    "duplicate id `{}` (first on line {}); this row is skipped",
                    row.person.id, entry.line
                ),
                id: Some(row.person.id.clone()),
            });
        }
        entry.line = row.line;
        entry.flags = FIRST_OK | planned(entry.known.as_deref(), &row.person);
        self.rows += 1;
        for (i, kind) in ROW_KINDS.iter().enumerate() {
            if entry.flags & bit(*kind) != 0 {
                self.counts[i] += 1;
            }
        }
        Ok(())
    }

    /// First pass, bad row: its person (when the id could be read) is present, with no events.
    pub fn observe_bad(&mut self, err: &RowError) {
        self.bad_rows += 1;
        let Some(id) = &err.id else {
            self.unidentified += 1;
            return;
        };
        let entry = self.entries.entry(id.as_str().into()).or_insert(Entry {
            known: None,
            line: 0,
            flags: 0,
        });
        if entry.line == 0 {
            entry.line = err.line;
        }
    }

    /// What the import would do, after the first pass.
    pub fn plan(&self) -> Plan {
        let mut leaves: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| {
                e.line == 0
                    && e.known.as_ref().is_some_and(|k| {
                        matches!(k.status, PersonStatus::Active | PersonStatus::PreHire)
                    })
            })
            .map(|(id, _)| id.to_string())
            .collect();
        leaves.sort_unstable();
        Plan {
            leaves,
            hires: self.counts[0],
            rehires: self.counts[1],
            transfers: self.counts[2],
            contract_changes: self.counts[3],
            active: self.active,
            rows: self.rows,
            bad_rows: self.bad_rows,
            unidentified: self.unidentified,
        }
    }

    /// The leave events of `plan`, in id order.
    pub fn leave_events<'a>(
        &'a self,
        plan: &'a Plan,
        import_key: &'a str,
    ) -> impl Iterator<Item = Change> + 'a {
        plan.leaves.iter().map(move |id| {
            let mut event = EventInput {
                id: None,
                kind: EventType::Leave,
                person: PersonInput {
                    id: id.clone(),
                    ..Default::default()
                },
                engagement: None,
                effective_at: None,
                source: Some("csv".into()),
            };
            event.id = Some(event_id(import_key, &event));
            Change {
                event,
                fields: Vec::new(),
            }
        })
    }

    /// Later pass for `kind`: the event of that kind for this row, if the first pass planned
    /// one (only for the first row of each id).
    pub fn event_for(&self, row: &RosterRow, kind: EventType, import_key: &str) -> Option<Change> {
        let entry = self.entries.get(row.person.id.as_str())?;
        if entry.line != row.line || entry.flags & FIRST_OK == 0 || entry.flags & bit(kind) == 0 {
            return None;
        }
        let p = &row.person;
        let (person, fields) = match kind {
            EventType::Hire | EventType::Rehire => {
                let fields = Field::ALL[1..]
                    .iter()
                    .copied()
                    .filter(|f| field_value(p, *f).is_some())
                    .collect();
                (p.clone(), fields)
            }
            EventType::Transfer | EventType::ContractChange => {
                let known = entry.known.as_deref()?;
                let contract = kind == EventType::ContractChange;
                let fields: Vec<Field> = known
                    .changed(p)
                    .into_iter()
                    .filter(|f| f.is_contract() == contract)
                    .collect();
                let mut person = PersonInput {
                    id: p.id.clone(),
                    ..Default::default()
                };
                for f in &fields {
                    copy_field(&mut person, p, *f);
                }
                (person, fields)
            }
            _ => return None,
        };
        let mut event = EventInput {
            id: None,
            kind,
            person,
            engagement: None,
            effective_at: None,
            source: Some("csv".into()),
        };
        event.id = Some(event_id(import_key, &event));
        Some(Change { event, fields })
    }
}

/// The events a good row calls for, as bits.
fn planned(known: Option<&Known>, row: &PersonInput) -> u8 {
    match known {
        None => HIRE,
        Some(k) if k.status == PersonStatus::Terminated => REHIRE,
        Some(k) => {
            let changed = k.changed(row);
            let mut bits = 0;
            if changed.iter().any(|f| !f.is_contract()) {
                bits |= TRANSFER;
            }
            if changed.iter().any(|f| f.is_contract()) {
                bits |= CONTRACT;
            }
            bits
        }
    }
}

fn copy_field(to: &mut PersonInput, from: &PersonInput, field: Field) {
    match field {
        Field::Id => to.id = from.id.clone(),
        Field::Name => to.name = from.name.clone(),
        Field::Email => to.email = from.email.clone(),
        Field::WorkerType => to.worker_type = from.worker_type,
        Field::Department => to.department = from.department.clone(),
        Field::Title => to.title = from.title.clone(),
        Field::Location => to.location = from.location.clone(),
        Field::Manager => to.manager = from.manager.clone(),
        Field::StartDate => to.start_date = from.start_date,
        Field::EndDate => to.end_date = from.end_date,
    }
}

// ---------------------------------------------------------------- in memory

/// A roster read whole: its columns and every row, good or bad. For tests and small files;
/// the CLI streams instead.
#[derive(Debug, Clone)]
pub struct ParsedRoster {
    /// The resolved columns.
    pub columns: Columns,
    /// Every non-blank row, in file order.
    pub rows: Vec<Result<RosterRow, RowError>>,
}

/// Reads a whole roster from memory. Fails only when the header does not fit the mapping (or
/// the CSV cannot be read at all).
pub fn parse_roster(data: &[u8], map: &ColumnMap) -> Result<ParsedRoster, HeaderError> {
    let mut reader =
        RosterReader::new(data).map_err(|e| HeaderError(format!("cannot read the header: {e}")))?;
    let columns = map.resolve(reader.header())?;
    let mut rows = Vec::new();
    loop {
        match reader.next_record() {
            Ok(None) => break,
            Ok(Some((line, record))) => rows.push(columns.parse(record, line)),
            Err(e) => return Err(HeaderError(format!("cannot read the CSV: {e}"))),
        }
    }
    Ok(ParsedRoster { columns, rows })
}

/// The outcome of [`diff`].
#[derive(Debug, Clone, Default)]
pub struct Diff {
    /// The events in order: leaves, hires, rehires, transfers, contract changes.
    pub changes: Vec<Change>,
    /// Bad rows, including duplicates, in file order.
    pub errors: Vec<RowError>,
    /// The counts and leaves.
    pub plan: Plan,
}

/// Diffs a roster held in memory against `current`, the same way the CLI does in passes.
pub fn diff<'a>(
    current: impl IntoIterator<Item = &'a Person>,
    roster: &ParsedRoster,
    import_key: &str,
) -> Diff {
    let mut differ = Differ::new();
    for p in current {
        differ.know(p);
    }
    let id_column = roster.columns.label(Field::Id);
    let mut errors = Vec::new();
    for row in &roster.rows {
        let result = match row {
            Ok(r) => differ.observe(r, id_column),
            Err(e) => {
                differ.observe_bad(e);
                Err(e.clone())
            }
        };
        if let Err(e) = result {
            errors.push(e);
        }
    }
    let plan = differ.plan();
    let mut changes: Vec<Change> = differ.leave_events(&plan, import_key).collect();
    for kind in ROW_KINDS {
        for row in roster.rows.iter().flatten() {
            changes.extend(differ.event_for(row, kind, import_key));
        }
    }
    Diff {
        changes,
        errors,
        plan,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::apply_event;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    const HEADER: &str =
        "id,name,email,worker_type,department,title,location,manager,start_date,end_date\n";

    fn roster(rows: &str) -> ParsedRoster {
        parse_roster(format!("{HEADER}{rows}").as_bytes(), &ColumnMap::default()).unwrap()
    }

    fn person(id: &str, status: PersonStatus) -> Person {
        Person {
            id: id.into(),
            name: format!("Person {id}"),
            email: format!("{id}@example.com"),
            worker_type: WorkerType::Employee,
            department: Some("Engineering".into()),
            title: Some("Engineer".into()),
            location: None,
            manager: None,
            start_date: None,
            end_date: None,
            status,
            attributes: Default::default(),
        }
    }

    fn row(id: &str) -> String {
        format!("{id},Person {id},{id}@example.com,employee,Engineering,Engineer,,,,\n")
    }

    fn kinds(d: &Diff) -> Vec<(String, String)> {
        d.changes
            .iter()
            .map(|c| (c.event.kind.to_string(), c.event.person.id.clone()))
            .collect()
    }

    #[test]
    fn a_good_row_parses_with_optional_cells_empty() {
        let r = roster("E1, Ada Lovelace ,ada@example.com,Employee,,Engineer,,E0,2026-01-05,\n");
        let row = r.rows[0].as_ref().unwrap();
        assert_eq!(row.line, 2);
        assert_eq!(row.person.name.as_deref(), Some("Ada Lovelace"));
        assert_eq!(row.person.worker_type, Some(WorkerType::Employee));
        assert_eq!(row.person.department, None);
        assert_eq!(row.person.manager.as_deref(), Some("E0"));
        assert_eq!(row.person.start_date, NaiveDate::from_ymd_opt(2026, 1, 5));
    }

    #[test]
    fn bad_rows_name_line_column_and_reason() {
        let r = roster(concat!(
            "E1,Ada,ada@example.com,employee,,,,,2026-13-01,\n",
            "E2,Bob,bob-at-example,employee,,,,,,\n",
            "E3,Cy,cy@example.com,robot,,,,,,\n",
            ",Dee,dee@example.com,employee,,,,,,\n",
            "E5,,e@example.com,employee,,,,,,\n",
            "E6,Fay,f@example.com,employee,,,,,05/01/2026,\n",
            "E7,Gil,g@example.com,employee,,,,,2026-02-01,2026-01-01\n",
            "E8,Hal,h@example.com,employee\n",
            "E 9,Ivy,i@example.com,employee,,,,,,\n",
        ));
        let errs: Vec<(u64, String, String)> = r
            .rows
            .iter()
            .map(|x| {
                let e = x.as_ref().unwrap_err();
                (e.line, e.column.clone(), e.reason.clone())
            })
            .collect();
        let cols: Vec<(u64, &str)> = errs.iter().map(|(l, c, _)| (*l, c.as_str())).collect();
        assert_eq!(
            cols,
            vec![
                (2, "start_date"),
                (3, "email"),
                (4, "worker_type"),
                (5, "id"),
                (6, "name"),
                (7, "start_date"),
                (8, "end_date"),
                (9, "department"),
                (10, "id"),
            ]
        );
        assert!(errs[0].2.contains("not a valid date"), "{}", errs[0].2);
        assert!(errs[1].2.contains("not an email"), "{}", errs[1].2);
        assert!(errs[2].2.contains("unknown worker type `robot`"));
        assert_eq!(errs[3].2, "missing id");
        assert!(errs[5].2.contains("YYYY-MM-DD"));
        assert!(errs[6].2.contains("before the start date"));
        assert!(errs[7].2.contains("4 fields, the header has 10"));
        // A bad row with a readable id still names the person.
        assert_eq!(r.rows[1].as_ref().unwrap_err().id.as_deref(), Some("E2"));
        assert_eq!(r.rows[3].as_ref().unwrap_err().id, None);
    }

    #[test]
    fn nul_characters_and_overlong_cells_are_refused_with_their_column() {
        let long = "x".repeat(crate::text::MAX_NAME + 1);
        let r = roster(&format!(
            "E1,Ada\0Lovelace,ada@example.com,employee,,,,,,\n\
             E2,Bob,bob@example.com,employee,Eng\0,,,,,\n\
             E3,Cy,cy@example.com,employee,,{long},,,,\n\
             E4,Dee,dee@example.com,employee,,,Lon\0don,,,\n"
        ));
        let errs: Vec<(u64, String, String)> = r
            .rows
            .iter()
            .map(|x| {
                let e = x.as_ref().expect_err("refused");
                (e.line, e.column.clone(), e.reason.clone())
            })
            .collect();
        assert_eq!(
            errs,
            vec![
                (2, "name".into(), "must not contain a NUL character".into()),
                (
                    3,
                    "department".into(),
                    "must not contain a NUL character".into()
                ),
                (4, "title".into(), "must be at most 256 characters".into()),
                (
                    5,
                    "location".into(),
                    "must not contain a NUL character".into()
                ),
            ]
        );
    }

    #[test]
    fn a_mapping_reads_other_headers_and_ignores_extra_columns() {
        let mut map = ColumnMap::default();
        map.set(Field::Id, "Employee ID");
        map.set(Field::Name, "Full Name");
        map.set(Field::Email, "Work Email");
        map.set(Field::WorkerType, "Type");
        let data = "\u{feff}Full Name,employee id,Cost Center,Work Email,Type,Title\nAda,E1,42,ada@example.com,contractor,CTO\n";
        let r = parse_roster(data.as_bytes(), &map).unwrap();
        let row = r.rows[0].as_ref().unwrap();
        assert_eq!(row.person.id, "E1");
        assert_eq!(row.person.title.as_deref(), Some("CTO"));
        assert_eq!(row.person.department, None);
        assert_eq!(r.columns.label(Field::Id), "employee id");
        assert!(!r.columns.has(Field::Department));
        let err = parse_roster(b"id,name,email\n", &ColumnMap::default()).unwrap_err();
        assert!(err.0.contains("`worker_type` (worker_type)"), "{err}");
        let err =
            parse_roster(b"id,name,email,worker_type,ID\n", &ColumnMap::default()).unwrap_err();
        assert!(err.0.contains("twice"), "{err}");
    }

    #[test]
    fn blank_lines_are_skipped_and_multiline_cells_keep_their_start_line() {
        let lines = |text: &str| -> Vec<u64> {
            parse_roster(text.as_bytes(), &ColumnMap::default())
                .unwrap()
                .rows
                .iter()
                .map(|x| x.as_ref().map_or_else(|e| e.line, |r| r.line))
                .collect()
        };
        let h = HEADER.trim_end();
        let a = "E1,\"Ada\nLovelace\",ada@example.com,employee,,,,,,";
        let b = "E2,Bob,bob@example.com,employee,,,,,,";
        assert_eq!(lines(&format!("{h}\n\n{a}\n{b}\n")), vec![3, 5]);
        assert_eq!(lines(&format!("{h}\r\n\r\n{a}\r\n\r\n\r\n{b}")), vec![3, 7]);
        assert_eq!(lines(&format!("\u{feff}{h}\n{b}\n  \n\n{a}\n")), vec![2, 5]);
        assert_eq!(lines(&format!("{h}\n\"E1\n\n\",x\n{b}\n")), vec![2, 5]);
        // A huge quoted cell spanning reads keeps counting right.
        let big = format!(
            "E3,\"{}\",c@example.com,employee,,,,,,",
            "x\n".repeat(100_000)
        );
        assert_eq!(lines(&format!("{h}\n{big}\n\n{b}\n")), vec![2, 100_004]);
    }

    #[test]
    fn the_diff_orders_leaves_hires_rehires_transfers_contract_changes() {
        let mut moved = person("E3", PersonStatus::Active);
        moved.title = Some("Manager".into());
        let mut contract = person("E4", PersonStatus::Active);
        contract.worker_type = WorkerType::Contractor;
        let mut both = person("E6", PersonStatus::Active);
        both.department = Some("Sales".into());
        both.worker_type = WorkerType::Partner;
        let current = vec![
            person("E1", PersonStatus::Active),
            person("E2", PersonStatus::Terminated),
            moved,
            contract,
            person("E5", PersonStatus::Active),
            both,
            person("E8", PersonStatus::Leaving),
            person("E9", PersonStatus::Terminated),
            person("E0", PersonStatus::PreHire),
        ];
        // E1 unchanged, E2 back, E3/E4/E6 changed, E5 and E0 gone, E7 new, E8 leaving anyway.
        let r = roster(
            &[
                row("E7"),
                row("E6"),
                row("E4"),
                row("E3"),
                row("E2"),
                row("E1"),
            ]
            .concat(),
        );
        let d = diff(&current, &r, "k");
        let want: Vec<(String, String)> = [
            ("leave", "E0"),
            ("leave", "E5"),
            ("hire", "E7"),
            ("rehire", "E2"),
            ("transfer", "E6"),
            ("transfer", "E3"),
            ("contract_change", "E6"),
            ("contract_change", "E4"),
        ]
        .iter()
        .map(|(k, p)| (k.to_string(), p.to_string()))
        .collect();
        assert_eq!(kinds(&d), want);
        let t = &d.changes[5];
        assert_eq!(t.fields, vec![Field::Title]);
        assert_eq!(t.event.person.title.as_deref(), Some("Engineer"));
        assert_eq!(t.event.person.name, None, "only changed fields travel");
        assert_eq!(t.to_string(), "transfer E3 title=\"Engineer\"");
        assert_eq!(d.changes[6].fields, vec![Field::WorkerType]);
        assert_eq!(d.plan.active, 7);
        for c in &d.changes {
            validate_event(&c.event).unwrap();
            assert!(c.event.id.as_ref().unwrap().starts_with("roster:k:"));
        }
    }

    #[test]
    fn duplicates_report_the_second_row_and_the_first_stands() {
        let r = roster(&[row("E1"), row("E2"), row("E1")].concat());
        let d = diff(&[], &r, "k");
        assert_eq!(d.errors.len(), 1);
        assert_eq!((d.errors[0].line, d.errors[0].column.as_str()), (4, "id"));
        assert!(d.errors[0].reason.contains("first on line 2"));
        assert_eq!(d.plan.hires, 2);
        assert_eq!(d.changes.len(), 2);
    }

    #[test]
    fn a_bad_row_keeps_its_person_from_leaving() {
        let current = [person("E1", PersonStatus::Active)];
        let r = roster("E1,Person E1,not-an-email,employee,,,,,,\n");
        let d = diff(&current, &r, "k");
        assert!(d.changes.is_empty(), "{:?}", kinds(&d));
        assert_eq!(d.plan.bad_rows, 1);
    }

    #[test]
    fn leaves_over_the_share_or_beside_unreadable_ids_are_held() {
        let current: Vec<Person> = (0..100)
            .map(|i| person(&format!("E{i:03}"), PersonStatus::Active))
            .collect();
        let keep = |n: usize| -> String { (0..n).map(|i| row(&format!("E{i:03}"))).collect() };
        let d = diff(&current, &roster(&keep(95)), "k");
        assert_eq!(d.plan.leaves.len(), 5);
        assert_eq!(d.plan.hold(0.05), None);
        let d = diff(&current, &roster(&keep(94)), "k");
        let hold = d.plan.hold(0.05).unwrap();
        assert!(
            hold.to_string()
                .contains("terminate 6 of 100 people (6.0%), more than max_leave_share 5%"),
            "{hold}"
        );
        let d = diff(
            &current,
            &roster(&(keep(99) + ",X,x@example.com,employee,,,,,,\n")),
            "k",
        );
        assert!(matches!(
            d.plan.hold(0.05),
            Some(Hold::Unidentified { leaves: 1, rows: 1 })
        ));
        // No people known: nothing to terminate, nothing to hold.
        assert_eq!(diff(&[], &roster(""), "k").plan.hold(0.0), None);
    }

    #[test]
    fn event_ids_are_deterministic_and_bounded() {
        let r = roster(&row("E1"));
        let a = diff(&[], &r, "abc");
        let b = diff(&[], &r, "abc");
        assert_eq!(a.changes[0].event.id, b.changes[0].event.id);
        assert_ne!(
            a.changes[0].event.id,
            diff(&[], &r, "abd").changes[0].event.id
        );
        let long = "x".repeat(200);
        let r = roster(&row(&long));
        let id = diff(&[], &r, &"f".repeat(32)).changes[0]
            .event
            .id
            .clone()
            .unwrap();
        assert!(id.len() <= 200, "{id}");
    }

    fn apply_all(state: &mut BTreeMap<String, Person>, changes: &[Change]) {
        let today = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
        for c in changes {
            let stored = state.get(&c.event.person.id);
            let applied = apply_event(&c.event, stored, &[], today).unwrap();
            state.insert(applied.person.id.clone(), applied.person);
        }
    }

    fn opt(v: &Option<String>) -> String {
        v.clone().unwrap_or_default()
    }

    fn csv_line(p: &Person) -> String {
        let date = |d: Option<NaiveDate>| d.map(|d| d.to_string()).unwrap_or_default();
        format!(
            "{},{},{},{},{},{},{},{},{},{}\n",
            p.id,
            p.name,
            p.email,
            p.worker_type,
            opt(&p.department),
            opt(&p.title),
            opt(&p.location),
            opt(&p.manager),
            date(p.start_date),
            date(p.end_date)
        )
    }

    fn arb_person() -> impl Strategy<Value = Person> {
        let text = prop::option::of(prop::sample::select(vec!["A", "B", "C"]));
        let date = prop::option::of((0u32..3).prop_map(|d| {
            NaiveDate::from_ymd_opt(2026, 1, 1).unwrap() + chrono::Days::new(d as u64 * 40)
        }));
        (
            0u8..12,
            prop::sample::select(vec!["Ada", "Bob"]),
            prop::sample::select(WorkerType::ALL.to_vec()),
            (text.clone(), text.clone(), text.clone(), text),
            (date.clone(), date),
            prop::sample::select(PersonStatus::ALL.to_vec()),
        )
            .prop_map(|(n, name, wt, (d, t, l, m), (s, e), status)| {
                let (s, e) = match (s, e) {
                    (Some(s), Some(e)) if e < s => (Some(e), Some(s)),
                    x => x,
                };
                Person {
                    id: format!("E{n}"),
                    name: name.into(),
                    email: format!("{}@example.com", name.to_lowercase()),
                    worker_type: wt,
                    department: d.map(String::from),
                    title: t.map(String::from),
                    location: l.map(String::from),
                    manager: m.map(|m| format!("E{m}")),
                    start_date: s,
                    end_date: e,
                    status,
                    attributes: Default::default(),
                }
            })
    }

    proptest! {
        #[test]
        fn importing_the_same_roster_twice_changes_nothing_the_second_time(
            current in prop::collection::vec(arb_person(), 0..12),
            wanted in prop::collection::vec(arb_person(), 0..12),
        ) {
            let mut state: BTreeMap<String, Person> =
                current.into_iter().map(|p| (p.id.clone(), p)).collect();
            let text: String = wanted.iter().map(csv_line).collect();
            let r = roster(&text);
            let first = diff(state.values(), &r, "k1");
            for c in &first.changes {
                prop_assert!(validate_event(&c.event).is_ok(), "{:?}", c.event);
            }
            apply_all(&mut state, &first.changes);
            let second = diff(state.values(), &r, "k1");
            prop_assert!(second.changes.is_empty(), "second import: {:?}", kinds(&second));
            // Everyone in the roster is there, not terminated, with the roster's values.
            let mut seen = std::collections::BTreeSet::new();
            for row in r.rows.iter().flatten() {
                if !seen.insert(row.person.id.clone()) {
                    continue;
                }
                let p = &state[&row.person.id];
                prop_assert_ne!(p.status, PersonStatus::Terminated);
                prop_assert_eq!(Some(&p.name), row.person.name.as_ref());
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..400)) {
            let mut input = HEADER.as_bytes().to_vec();
            input.extend_from_slice(&data);
            if let Ok(r) = parse_roster(&input, &ColumnMap::default()) {
                let d = diff(&[person("E1", PersonStatus::Active)], &r, "k");
                for c in &d.changes {
                    prop_assert!(validate_event(&c.event).is_ok());
                }
            }
        }
    }
}
