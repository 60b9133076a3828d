//! Evidence an auditor can check without trusting the database: `tenure keys generate`, the
//! checkpoint writer's set-up for `serve`, `tenure audit verify` (the chain, and the chain
//! against signed checkpoints, or an export offline) and `tenure audit export`.

use crate::DbArgs;
use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tenure_core::checkpoint::{
    self, Checkpoint, CheckpointChecker, EXPORT_FORMAT, ExportHeader, ExportLine, ExportVerifier,
    Link, PrivateKey, PublicKey,
};
use tenure_core::config::{CheckpointSettings, CheckpointSink, KeySource};

/// The longest line read from a checkpoint file or an export (an audit entry with its details).
const MAX_LINE: u64 = 16 * 1024 * 1024;
/// Entries read from the database at once.
const PAGE: i64 = 5_000;

/// `tenure keys ...`.
#[derive(Subcommand)]
pub enum KeysCommand {
    /// Make an Ed25519 key pair for signing audit checkpoints: the private key goes to a new
    /// file readable by its owner only; the public key is printed (and written with
    /// --public-out).
    Generate {
        /// The private key file to create (refused if it exists).
        #[arg(long)]
        out: PathBuf,
        /// Also write the public key to this file.
        #[arg(long)]
        public_out: Option<PathBuf>,
    },
    /// Make a master key for sealing personal data, in a new file readable by its owner only.
    Master(crate::privacy::MasterArgs),
}

/// `tenure audit verify`.
#[derive(Args)]
pub struct VerifyArgs {
    /// A public key checkpoints may be signed with: `ed25519:<hex>`, or a file holding it.
    /// Repeat it after the signing key was replaced (the old key for the checkpoints it
    /// signed). Without it, checkpoints are not checked.
    #[arg(long = "public-key", value_name = "KEY")]
    public_keys: Vec<String>,
    /// A checkpoint file (the `file:` sink's JSON lines) to check besides the database's own.
    #[arg(long, value_name = "FILE")]
    checkpoints: Option<PathBuf>,
    /// Verify this export offline instead of the database (needs --public-key).
    #[arg(long, value_name = "FILE", conflicts_with = "checkpoints")]
    export: Option<PathBuf>,
    #[command(flatten)]
    db: DbArgs,
}

/// `tenure audit export`.
#[derive(Args)]
pub struct ExportArgs {
    /// The first entry: a sequence number, or an RFC 3339 time (the first entry at or after it).
    #[arg(long, value_name = "SEQ|TIME")]
    from: Option<String>,
    /// The last entry: a sequence number, or an RFC 3339 time (the last entry before it).
    #[arg(long, value_name = "SEQ|TIME")]
    to: Option<String>,
    /// Only this person's entries in full; the entries between are written as links.
    #[arg(long, value_name = "ID")]
    person: Option<String>,
    /// The file to write (refused if it exists).
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    db: DbArgs,
}

/// `tenure evidence`.
#[derive(Args)]
pub struct LeaverArgs {
    /// The person (HR id) whose latest leave to give evidence of.
    person: String,
    /// The tenure.toml whose `[sla]` targets the removal is measured against; without it no
    /// target is judged.
    #[arg(long, env = "TENURE_CONFIG")]
    config: Option<PathBuf>,
    /// Write a printable HTML page instead of JSON.
    #[arg(long)]
    html: bool,
    #[command(flatten)]
    db: DbArgs,
}

/// `tenure report`.
#[derive(Subcommand)]
pub enum ReportCommand {
    /// The service-level report of a period (JSON, as `GET /api/v1/reports/sla` answers):
    /// provisioning and revocation times per system against `[sla]`, and every breach.
    Sla(SlaArgs),
}

/// `tenure report sla`.
#[derive(Args)]
pub struct SlaArgs {
    /// Runs received at or after this RFC 3339 time (default: 30 days before --until).
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Runs received before this RFC 3339 time (default: now).
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
    /// Judge runs not done as of this RFC 3339 time (default: now): one past its target then
    /// is a breach.
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
    /// The tenure.toml whose `[sla]` targets to judge against; without it none is.
    #[arg(long, env = "TENURE_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    db: DbArgs,
}

// ---------------------------------------------------------------- keys

pub fn keys(command: KeysCommand) -> Result<()> {
    let (out, public_out) = match command {
        KeysCommand::Generate { out, public_out } => (out, public_out),
        KeysCommand::Master(args) => return crate::privacy::make_master_key(&args.out),
    };
    let mut seed = [0u8; 32];
    rand::TryRngCore::try_fill_bytes(&mut rand::rngs::OsRng, &mut seed)
        .map_err(|e| anyhow!("reading randomness from the operating system: {e}"))?;
    let key = PrivateKey::from_bytes(&seed);
    seed.fill(0);
    let public = checkpoint::public_key_text(&key.verifying_key());
    crate::files::write_new(
        &out,
        &format!("{}\n", checkpoint::private_key_text(&key)),
        true,
    )?;
    if let Some(p) = &public_out {
        crate::files::write_new(p, &format!("{public}\n"), false)?;
    }
    println!("{public}");
    eprintln!(
        "wrote the private key to {} (readable by you only); give the public key above to whoever verifies",
        out.display()
    );
    Ok(())
}

/// Reads the signing key the settings name. A key file must be readable by its owner only.
fn signing_key(key: &KeySource, base: &Path) -> Result<PrivateKey> {
    let text = match key {
        KeySource::Env(name) => std::env::var(name).map_err(|_| {
            anyhow!("audit.checkpoints: the environment variable {name} (key_env) is not set")
        })?,
        KeySource::File(file) => {
            let path = base.join(file);
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let meta = std::fs::metadata(&path)
                    .with_context(|| format!("audit.checkpoints: key_file {}", path.display()))?;
                if meta.permissions().mode() & 0o077 != 0 {
                    bail!(
                        "audit.checkpoints: key_file {} can be read by others than its owner: chmod 600 it",
                        path.display()
                    );
                }
            }
            read_small(&path, 4096)
                .with_context(|| format!("audit.checkpoints: key_file {}", path.display()))?
        }
    };
    // The error names the expected form, never the text read.
    checkpoint::parse_private_key(&text).map_err(|e| anyhow!("audit.checkpoints: the key: {e}"))
}

fn read_small(path: &Path, max: u64) -> Result<String> {
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(max + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > max {
        bail!("longer than {max} bytes");
    }
    Ok(text)
}

/// What `tenure check` says of `[audit.checkpoints]`'s key: a `key_file` is read as `serve`
/// would read it (owner-only, a valid key) and its public key returned; a `key_env` is only
/// named (like every secret from the environment, it is needed at start, not here).
pub fn check_checkpoint_key(settings: &CheckpointSettings, base: &Path) -> Result<Option<String>> {
    match &settings.key {
        KeySource::File(_) => {
            let key = signing_key(&settings.key, base)?;
            Ok(Some(checkpoint::public_key_text(&key.verifying_key())))
        }
        KeySource::Env(_) => Ok(None),
    }
}

/// The checkpoint writer `serve` runs, from `[audit.checkpoints]`; relative paths are taken
/// from the folder of tenure.toml (`base`).
pub fn checkpoint_writer(
    settings: &CheckpointSettings,
    base: &Path,
    store: tenure_store::Store,
    clock: Arc<dyn tenure_engine::Clock>,
) -> Result<tenure_engine::CheckpointWriter> {
    let key = signing_key(&settings.key, base)?;
    let sink = match &settings.sink {
        CheckpointSink::File(p) => tenure_engine::Sink::File(base.join(p)),
        CheckpointSink::Webhook { url, secret_env } => {
            let secret = std::env::var(secret_env).map_err(|_| {
                anyhow!("audit.checkpoints: the environment variable {secret_env} (secret_env) is not set")
            })?;
            tenure_engine::Sink::webhook(url, &secret)?
        }
    };
    tracing::info!(
        public_key = %checkpoint::public_key_text(&key.verifying_key()),
        sink = ?sink,
        "signing audit checkpoints"
    );
    Ok(tenure_engine::CheckpointWriter::new(
        store,
        clock,
        key,
        settings.cadence,
        sink,
    ))
}

// ---------------------------------------------------------------- verify

fn public_key(given: &str) -> Result<PublicKey> {
    let text = if given.trim_start().starts_with(checkpoint::PUBLIC_PREFIX) {
        given.to_string()
    } else {
        read_small(Path::new(given), 4096).with_context(|| format!("--public-key {given}"))?
    };
    checkpoint::parse_public_key(&text).map_err(|e| anyhow!("--public-key: {e}"))
}

/// Reads JSON lines, each at most [`MAX_LINE`] bytes, handing each to `each` with its number.
fn read_lines(path: &Path, mut each: impl FnMut(usize, &str) -> Result<()>) -> Result<()> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut r = BufReader::new(file);
    let mut buf = Vec::new();
    let mut n = 0;
    loop {
        buf.clear();
        let read = (&mut r)
            .take(MAX_LINE + 1)
            .read_until(b'\n', &mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if read == 0 {
            return Ok(());
        }
        n += 1;
        if buf.len() as u64 > MAX_LINE {
            bail!("{}:{n}: longer than {MAX_LINE} bytes", path.display());
        }
        let text = std::str::from_utf8(&buf)
            .map_err(|_| anyhow!("{}:{n}: not UTF-8", path.display()))?
            .trim_end();
        if !text.is_empty() {
            each(n, text)?;
        }
    }
}

pub async fn verify(args: VerifyArgs) -> Result<()> {
    let keys = args
        .public_keys
        .iter()
        .map(|k| public_key(k))
        .collect::<Result<Vec<_>>>()?;
    if let Some(export) = &args.export {
        if keys.is_empty() {
            bail!("--export needs --public-key: the key checkpoints are signed with");
        }
        return verify_export(export, keys);
    }
    let key = (!keys.is_empty()).then_some(keys);
    if args.checkpoints.is_some() && key.is_none() {
        bail!("--checkpoints needs --public-key: the key checkpoints are signed with");
    }
    let store = args.db.open_existing().await?;
    let mut c = store.reader().await?;
    let mut checkpoints = Vec::new();
    let mut after = 0;
    loop {
        let page = tenure_store::checkpoints_between(&mut c, after, i64::MAX, 10_000).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        checkpoints.extend(page);
    }
    let stored = checkpoints.len();
    if let Some(path) = &args.checkpoints {
        read_lines(path, |n, text| {
            let cp: Checkpoint = serde_json::from_str(text)
                .map_err(|e| anyhow!("{}:{n}: not a checkpoint: {e}", path.display()))?;
            checkpoints.push(cp);
            Ok(())
        })?;
    }
    let from_file = checkpoints.len() - stored;
    let mut checker = key.as_ref().map(|k| CheckpointChecker::new(checkpoints, k));

    let mut verifier = tenure_core::audit::Verifier::default();
    let mut chain_break = None;
    let mut last_seq = 0;
    let mut after = 0;
    loop {
        let page = tenure_store::audit_page(&mut c, after, None, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for e in &page {
            if chain_break.is_none()
                && let Err(broken) = verifier.push(e)
            {
                chain_break = Some(broken);
            }
            if let Some(ch) = checker.as_mut() {
                ch.observe(e.seq, &e.hash);
            }
            last_seq = e.seq;
        }
    }
    let (head_seq, head_hash) = tenure_store::audit_head(&mut c).await?;
    drop(c);
    store.close().await;
    let mut problems: Vec<String> = Vec::new();
    let n = match chain_break {
        Some(b) => {
            problems.push(b.to_string());
            None
        }
        None => match verifier.finish(head_seq, &head_hash) {
            Ok(n) => Some(n),
            Err(b) => {
                problems.push(b.to_string());
                None
            }
        },
    };
    let mut checked = None;
    if let Some(ch) = checker {
        let total = ch.len();
        let (matched, found) = ch.finish(last_seq);
        problems.extend(found.iter().map(ToString::to_string));
        checked = Some((matched, total));
    }
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("audit trail broken: {p}");
        }
        bail!(
            "the audit trail failed verification ({} problem{})",
            problems.len(),
            if problems.len() == 1 { "" } else { "s" }
        );
    }
    println!(
        "audit trail intact: {} entries, head {head_hash}",
        n.unwrap_or(last_seq)
    );
    match checked {
        Some((matched, _)) => println!(
            "checkpoints: {matched} verified ({stored} in the database{}), signed by the keys given",
            if args.checkpoints.is_some() {
                format!(", {from_file} in the file")
            } else {
                String::new()
            }
        ),
        None if stored > 0 => println!(
            "checkpoints: {stored} in the database, not checked: give --public-key to check them"
        ),
        None => {}
    }
    Ok(())
}

fn verify_export(path: &Path, keys: Vec<PublicKey>) -> Result<()> {
    let mut v = ExportVerifier::new(keys);
    read_lines(path, |_, text| {
        v.push_line(text);
        Ok(())
    })?;
    let s = match v.finish() {
        Ok(s) => s,
        Err(problems) => {
            for p in &problems {
                eprintln!("export broken: {}: {p}", path.display());
            }
            bail!("{} failed verification", path.display());
        }
    };
    let Some((first, last)) = s.range else {
        println!("export intact: it holds no entries");
        return Ok(());
    };
    match &s.header.person {
        None => println!(
            "export intact: entries {first} to {last} ({} entries), each hash recomputed and chained",
            s.entries
        ),
        Some(p) => println!(
            "export intact: {} entries of person {p} in full, {} entries between them as links (seq {first} to {last}); the links' hashes are as the exporter read them",
            s.entries, s.links
        ),
    }
    if s.from_genesis {
        println!("the chain starts at its first entry");
    } else {
        println!(
            "the chain starts after entry {}: its hash is taken from entry {first}",
            first - 1
        );
    }
    match s.anchored_to {
        Some(a) => {
            println!(
                "anchored: {} signed checkpoint{} (at {}) vouch for every entry up to {a}",
                s.anchored_by.len(),
                if s.anchored_by.len() == 1 { "" } else { "s" },
                s.anchored_by
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            if a < last {
                println!(
                    "not anchored: entries {} to {last} are chained, but no checkpoint in the export covers them",
                    a + 1
                );
            }
        }
        None => println!(
            "not anchored: no signed checkpoint in the export matches an entry of it; it proves only that its entries are unaltered relative to one another"
        ),
    }
    Ok(())
}

// ---------------------------------------------------------------- export

/// A sequence number, or the first entry at or after (`from`) / last before (`!from`) a time.
async fn resolve_bound(c: &mut tenure_store::Conn, given: &str, from: bool) -> Result<Option<i64>> {
    let flag = if from { "--from" } else { "--to" };
    if let Ok(seq) = given.trim().parse::<i64>() {
        if seq < 1 {
            bail!("{flag} {given}: sequence numbers start at 1");
        }
        return Ok(Some(seq));
    }
    let t = chrono::DateTime::parse_from_rfc3339(given.trim()).map_err(|_| {
        anyhow!("{flag} `{given}` is neither a sequence number nor an RFC 3339 time")
    })?;
    let ms = t.timestamp_millis();
    Ok(if from {
        tenure_store::audit_seq_from_time(c, ms).await?
    } else {
        tenure_store::audit_seq_before_time(c, ms).await?
    })
}

pub async fn export(args: ExportArgs) -> Result<()> {
    let store = args.db.open_existing().await?;
    let mut c = store.reader().await?;
    let (head, _) = tenure_store::audit_head(&mut c).await?;
    let from = match &args.from {
        Some(f) => resolve_bound(&mut c, f, true).await?,
        None => Some(1),
    };
    let to = match &args.to {
        Some(t) => resolve_bound(&mut c, t, false).await?,
        None => Some(head),
    };
    let (from, mut to) = match (from, to) {
        (Some(f), Some(t)) => (f, t.min(head)),
        _ => (1, 0), // a time bound with no entry on its side: nothing to export
    };
    // A person's entries are linked to the next checkpoint, so that one vouches for them.
    let mut first = from;
    let last_full = to;
    if let Some(person) = &args.person {
        let f = tenure_store::AuditFilter {
            after: from - 1,
            person: Some(person),
            limit: 1,
            ..Default::default()
        };
        first = tenure_store::audit_matching(&mut c, &f)
            .await?
            .first()
            .map_or(i64::MAX, |e| e.seq);
        if let Some(anchor) = tenure_store::checkpoint_at_or_after(&mut c, to).await?
            && anchor.seq <= head
        {
            to = to.max(anchor.seq);
        }
    }
    // Audit entries name people: the export is readable by its owner only.
    let mut open = std::fs::OpenOptions::new();
    open.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
    let file = open.open(&args.out).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            anyhow!("{} already exists: not overwriting it", args.out.display())
        } else {
            anyhow!("creating {}: {e}", args.out.display())
        }
    })?;
    let mut w = BufWriter::new(file);
    let line = |w: &mut BufWriter<std::fs::File>, l: &ExportLine| -> Result<()> {
        serde_json::to_writer(&mut *w, l)?;
        w.write_all(b"\n")?;
        Ok(())
    };
    line(
        &mut w,
        &ExportLine::Header(ExportHeader {
            format: EXPORT_FORMAT.into(),
            from_seq: from,
            to_seq: to,
            person: args.person.clone(),
            exported_at_ms: chrono::Utc::now().timestamp_millis(),
        }),
    )?;
    let (mut entries, mut links) = (0usize, 0usize);
    if first <= to {
        let mut after = first - 1;
        loop {
            let page = tenure_store::checkpoints_between(&mut c, after, to, 10_000).await?;
            let Some(l) = page.last() else { break };
            after = l.seq;
            for cp in page.into_iter().filter(|cp| cp.seq >= first) {
                line(&mut w, &ExportLine::Checkpoint(cp))?;
            }
        }
        let mut after = first - 1;
        'pages: loop {
            let page = tenure_store::audit_page(&mut c, after, None, PAGE).await?;
            let Some(l) = page.last() else { break };
            after = l.seq;
            for e in page {
                if e.seq > to {
                    break 'pages;
                }
                let full = match &args.person {
                    None => true,
                    Some(p) => e.person_id.as_deref() == Some(p.as_str()) && e.seq <= last_full,
                };
                if full {
                    entries += 1;
                    line(&mut w, &ExportLine::Entry(Box::new(e)))?;
                } else {
                    links += 1;
                    line(
                        &mut w,
                        &ExportLine::Link(Link {
                            seq: e.seq,
                            prev_hash: e.prev_hash,
                            hash: e.hash,
                        }),
                    )?;
                }
            }
        }
    }
    let file = w
        .into_inner()
        .map_err(|e| anyhow!("writing {}: {}", args.out.display(), e.error()))?;
    file.sync_all()
        .with_context(|| format!("writing {}", args.out.display()))?;
    drop(c);
    store.close().await;
    match &args.person {
        None => println!(
            "exported {entries} entries (seq {from} to {to}) to {}",
            args.out.display()
        ),
        Some(p) => println!(
            "exported {entries} entries of person {p} and {links} links to {}",
            args.out.display()
        ),
    }
    Ok(())
}

// ---------------------------------------------------------------- leaver evidence

/// `tenure evidence PERSON`: the evidence of the person's latest leave, as JSON (what
/// `GET /api/v1/people/{id}/evidence` answers) or as a printable HTML page.
pub async fn leaver(args: LeaverArgs) -> Result<()> {
    let sla = sla_of(args.config.as_deref())?;
    let store = args.db.open_existing().await?;
    let mut c = store.reader().await?;
    let now = chrono::Utc::now().timestamp_millis();
    let evidence = match tenure_store::leaver_evidence(&mut c, &args.person, &sla, now).await? {
        tenure_store::LeaverReport::Leaver(e) => e,
        tenure_store::LeaverReport::NoSuchPerson => bail!("no person `{}`", args.person),
        tenure_store::LeaverReport::NotLeft => bail!(
            "person `{}` has not left: there is no leave event to give evidence of",
            args.person
        ),
    };
    let out = if args.html {
        leaver_html(&evidence)
    } else {
        serde_json::to_string_pretty(&evidence)? + "\n"
    };
    std::io::stdout()
        .write_all(out.as_bytes())
        .context("writing the evidence")?;
    Ok(())
}

/// Text made safe inside HTML.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An epoch-ms time as RFC 3339 (UTC).
fn when(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    )
}

/// A target check in words.
fn sla_words(s: &tenure_core::evidence::SlaCheck) -> String {
    let took = s
        .took_ms
        .map_or_else(|| "not finished".to_string(), |t| format!("took {} ms", t));
    match (s.target_ms, s.met) {
        (None, _) => format!("{took}; no target set"),
        (Some(t), Some(true)) => format!("{took}; target {t} ms met"),
        (Some(t), Some(false)) => format!("{took}; target {t} ms MISSED"),
        (Some(t), None) => format!("{took}; target {t} ms not yet passed"),
    }
}

/// A table row of one cited audit entry: action, entitlement, time, sequence number, `last`.
fn cited_row(h: &mut String, c: &tenure_core::evidence::Cited, last: &str) {
    use std::fmt::Write as _;
    let _ = writeln!(
        h,
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        esc(&c.action),
        esc(c.entitlement.as_deref().unwrap_or("")),
        when(c.at),
        c.audit_seq,
        esc(last)
    );
}

/// The evidence as a self-contained printable HTML page (no scripts, no outside resources).
fn leaver_html(e: &tenure_core::evidence::LeaverEvidence) -> String {
    use std::fmt::Write as _;
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Leave evidence: {id}</title>\
         <style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;margin:1em 0}}\
         td,th{{border:1px solid #999;padding:.3em .6em;text-align:left}}.missed{{color:#b00;font-weight:bold}}</style>\
         </head><body>\n<h1>Leave evidence: {id}</h1>\n<p>Status now: {status}. Leave event {event} \
         (audit entry {seq}) received {received}, effective {effective}; run {run}.</p>\n\
         <p>Overall: {overall}. {complete}</p>\n",
        id = esc(&e.person_id),
        status = esc(&e.status.to_string()),
        event = esc(&e.leave.event_id),
        seq = e
            .leave
            .audit_seq
            .map_or_else(|| "not found".into(), |s| s.to_string()),
        received = when(e.leave.received_at),
        effective = when(e.leave.effective_at),
        run = esc(&e.leave.run_id),
        overall = esc(&sla_words(&e.sla)),
        complete = if e.complete {
            "Nothing is held on any system."
        } else {
            "<span class=\"missed\">Access is still held (see below).</span>"
        },
    );
    for s in &e.systems {
        let _ = write!(
            h,
            "<h2>{}</h2>\n<p>{}</p>\n<table><tr><th>what</th><th>entitlement</th><th>recorded</th>\
             <th>audit entry</th><th>operation id</th></tr>\n",
            esc(&s.system),
            esc(&sla_words(&s.sla))
        );
        let rows = s
            .disabled
            .iter()
            .chain(&s.revoked)
            .chain(&s.deleted)
            .chain(&s.granted)
            .chain(&s.failed);
        for c in rows {
            cited_row(&mut h, c, c.op_id.as_deref().unwrap_or(""));
        }
        h.push_str("</table>\n");
        for held in &s.still_held {
            let _ = writeln!(
                h,
                "<p class=\"missed\">Still held: {} ({})</p>",
                esc(held.entitlement.as_deref().unwrap_or("the account")),
                esc(&held.state)
            );
        }
    }
    if !e.approvals.is_empty() {
        h.push_str("<h2>Approvals and requests</h2>\n<table><tr><th>what</th><th>entitlement</th><th>recorded</th><th>audit entry</th><th>reason</th></tr>\n");
        for c in &e.approvals {
            cited_row(&mut h, c, &c.reason);
        }
        h.push_str("</table>\n");
    }
    h.push_str("<p>Each audit entry can be checked with <code>tenure audit verify</code>.</p>\n</body></html>\n");
    h
}

// ---------------------------------------------------------------- service-level report

/// An RFC 3339 time given on the command line, as epoch ms.
fn time_arg(flag: &str, value: &str) -> Result<i64> {
    chrono::DateTime::parse_from_rfc3339(value)
        .map(|t| t.timestamp_millis())
        .map_err(|e| {
            anyhow!(
                "--{flag}: `{value}` is not an RFC 3339 time such as 2026-01-31T09:00:00Z ({e})"
            )
        })
}

/// The `[sla]` of `config`, or none.
fn sla_of(config: Option<&Path>) -> Result<tenure_core::config::SlaSettings> {
    Ok(match config {
        Some(path) => crate::config_files::load(path)?.sla,
        None => tenure_core::config::SlaSettings::default(),
    })
}

/// `tenure report ...`.
pub async fn report(command: ReportCommand) -> Result<()> {
    let ReportCommand::Sla(args) = command;
    let sla = sla_of(args.config.as_deref())?;
    let now = match &args.at {
        Some(t) => time_arg("at", t)?,
        None => chrono::Utc::now().timestamp_millis(),
    };
    let bound = |flag: &str, value: &Option<String>| value.as_deref().map(|t| time_arg(flag, t));
    let (since, until) = tenure_core::sla::period(
        bound("since", &args.since).transpose()?,
        bound("until", &args.until).transpose()?,
        now,
    )
    .ok_or_else(|| anyhow!("--since must be before --until"))?;
    let store = args.db.open_existing().await?;
    let mut c = store.reader().await?;
    let report = tenure_store::sla_report(&mut c, &sla, since, until, now).await?;
    let out = serde_json::to_string_pretty(&report)? + "\n";
    std::io::stdout()
        .write_all(out.as_bytes())
        .context("writing the report")?;
    Ok(())
}
