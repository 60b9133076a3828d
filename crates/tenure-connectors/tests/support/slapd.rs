//! A throwaway OpenLDAP server (Debian's `slapd`) for the LDAP tests: its own temporary
//! directory, a `slapd.conf` read with `-f`, a free loopback port, StartTLS with a self-signed
//! certificate made by `openssl`, and the process killed when the value drops.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SUFFIX: &str = "dc=example,dc=com";
pub const ADMIN_DN: &str = "cn=admin,dc=example,dc=com";
pub const ADMIN_PASSWORD: &str = "throwaway-admin-secret";

pub struct Slapd {
    child: Child,
    pub port: u16,
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_slapd() -> Option<PathBuf> {
    [
        "/usr/sbin/slapd",
        "/usr/local/sbin/slapd",
        "/usr/local/libexec/slapd",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

fn module_path() -> Option<&'static str> {
    [
        "/usr/lib/ldap",
        "/usr/lib/x86_64-linux-gnu/ldap",
        "/usr/lib/aarch64-linux-gnu/ldap",
    ]
    .into_iter()
    .find(|p| Path::new(p).join("back_mdb.so").exists())
}

fn make_cert(dir: &Path) -> bool {
    Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Slapd {
    /// Starts a server, or returns `None` (after `support::unavailable`) when slapd is not
    /// installed. Panics when it is installed but does not start: that is a real failure.
    pub fn start() -> Option<Slapd> {
        Slapd::start_with(false)
    }

    /// Like [`Slapd::start`]; with `require_tls`, slapd refuses every operation on a
    /// connection that has not been upgraded with StartTLS.
    pub fn start_with(require_tls: bool) -> Option<Slapd> {
        let Some(bin) = find_slapd() else {
            super::unavailable("slapd (Debian packages slapd and ldap-utils)");
            return None;
        };
        let modules = module_path().expect("slapd is installed but back_mdb.so was not found");
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        let tls = if make_cert(dir.path()) {
            format!(
                "TLSCertificateFile {0}/cert.pem\nTLSCertificateKeyFile {0}/key.pem\n",
                dir.path().display()
            )
        } else {
            panic!("openssl could not make a test certificate for StartTLS");
        };
        let conf = format!(
            "include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath {modules}
moduleload back_mdb
pidfile {d}/slapd.pid
{tls}
{security}
database mdb
maxsize 104857600
suffix \"{SUFFIX}\"
rootdn \"{ADMIN_DN}\"
rootpw {ADMIN_PASSWORD}
directory {d}/data
index uid eq
index member eq
access to attrs=userPassword by self =w by anonymous auth by * none
access to * by * read
",
            d = dir.path().display(),
            security = if require_tls { "security tls=1" } else { "" },
        );
        std::fs::write(dir.path().join("slapd.conf"), conf).unwrap();
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let url = format!("ldap://127.0.0.1:{port}");
        // `-d 0` keeps slapd in the foreground (a child we can kill) without debug output.
        let child = Command::new(bin)
            .arg("-f")
            .arg(dir.path().join("slapd.conf"))
            .args(["-h", &format!("{url}/"), "-d", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting slapd");
        let mut slapd = Slapd {
            child,
            port,
            url,
            _dir: dir,
        };
        // Readiness: the port accepts connections (bounded; slapd starts in well under 1 s).
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            if let Some(status) = slapd.child.try_wait().unwrap() {
                let mut err = String::new();
                use std::io::Read;
                slapd
                    .child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .ok();
                panic!("slapd exited ({status}) before listening: {err}");
            }
            assert!(
                Instant::now() < deadline,
                "slapd did not listen within 20 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(slapd)
    }
}

/// A connection bound as the directory's administrator (over StartTLS, which every test
/// server offers).
pub async fn admin(url: &str) -> ldap3::Ldap {
    let settings = ldap3::LdapConnSettings::new()
        .set_starttls(true)
        .set_no_tls_verify(true);
    let (conn, mut ldap) = ldap3::LdapConnAsync::with_settings(settings, url)
        .await
        .unwrap();
    tokio::spawn(async move { conn.drive().await });
    ldap.simple_bind(ADMIN_DN, ADMIN_PASSWORD)
        .await
        .unwrap()
        .success()
        .unwrap();
    ldap
}

/// The directory's skeleton: the base entry, `ou=people`, `ou=disabled`, `ou=groups`, and a
/// `groupOfNames` per name in `groups` holding only `placeholder`.
pub async fn seed(url: &str, groups: &[&str], placeholder: &str) {
    let set = |v: &[&str]| {
        v.iter()
            .map(|s| s.to_string())
            .collect::<std::collections::HashSet<_>>()
    };
    let mut entries = vec![(
        SUFFIX.to_string(),
        vec![
            (
                "objectClass".to_string(),
                set(&["top", "dcObject", "organization"]),
            ),
            ("dc".to_string(), set(&["example"])),
            ("o".to_string(), set(&["Example"])),
        ],
    )];
    for ou in ["people", "disabled", "groups"] {
        entries.push((
            format!("ou={ou},{SUFFIX}"),
            vec![
                ("objectClass".to_string(), set(&["organizationalUnit"])),
                ("ou".to_string(), set(&[ou])),
            ],
        ));
    }
    for g in groups {
        entries.push((
            format!("cn={g},ou=groups,{SUFFIX}"),
            vec![
                ("objectClass".to_string(), set(&["groupOfNames"])),
                ("cn".to_string(), set(&[g])),
                ("member".to_string(), set(&[placeholder])),
            ],
        ));
    }
    let mut l = admin(url).await;
    for (dn, attrs) in entries {
        l.add(&dn, attrs).await.unwrap().success().unwrap();
    }
}

/// The `member` values of the group entry `dn`, sorted.
pub async fn members(url: &str, dn: &str) -> Vec<String> {
    let mut l = admin(url).await;
    let (rs, _) = l
        .search(dn, ldap3::Scope::Base, "(objectClass=*)", vec!["member"])
        .await
        .unwrap()
        .success()
        .unwrap();
    let mut m = ldap3::SearchEntry::construct(rs.into_iter().next().unwrap())
        .attrs
        .remove("member")
        .unwrap_or_default();
    m.sort();
    m
}
