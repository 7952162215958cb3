//! A throwaway PostgreSQL server for the tests of guard's shared store:
//! `initdb` into a temporary directory, `postgres` on a free loopback port
//! with trust authentication and a database `guard`, stopped and removed
//! on drop.
//!
//! The binaries come from `pg_config --bindir`, `initdb` on PATH or
//! Debian's /usr/lib/postgresql/*/bin. Without them the tests that need a
//! server say so and pass, unless GUARD_REQUIRE_POSTGRES is set (CI sets
//! it: there they must run). initdb and postgres refuse to run as root: as
//! root they run as the `postgres` system user (through runuser, else su).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The binaries the harness uses, all from one directory.
const NEEDED: [&str; 6] = [
    "initdb",
    "postgres",
    "pg_ctl",
    "pg_isready",
    "createdb",
    "psql",
];

/// A running throwaway server.
pub struct PgServer {
    bin: PathBuf,
    /// The command prefix that runs a server binary as `postgres` (empty
    /// when not root).
    run_as: Vec<OsString>,
    data: PathBuf,
    port: u16,
    child: Option<std::process::Child>,
    /// Removed (after the server stopped) when dropped.
    root: tempfile::TempDir,
}

impl PgServer {
    /// Starts a server with an empty database `guard`; None (after saying
    /// why) when PostgreSQL is not installed here and GUARD_REQUIRE_POSTGRES
    /// is unset. Panics when it is installed but does not start.
    pub async fn start() -> Option<PgServer> {
        match tokio::task::spawn_blocking(PgServer::start_blocking).await {
            Ok(server) => server,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    /// [`PgServer::start`] for synchronous code.
    pub fn start_blocking() -> Option<PgServer> {
        PgServer::start_inner(false)
    }

    /// A server that takes TLS connections, its certificate (for
    /// 127.0.0.1) issued by a throwaway CA made here with `openssl`;
    /// returns the server and the CA's certificate (PEM).
    pub fn start_tls_blocking() -> Option<(PgServer, PathBuf)> {
        let server = PgServer::start_inner(true)?;
        let ca = server.root.path().join("ca.crt");
        Some((server, ca))
    }

    fn start_inner(tls: bool) -> Option<PgServer> {
        let required = std::env::var_os("GUARD_REQUIRE_POSTGRES").is_some();
        let unavailable = |why: &str| {
            assert!(!required, "GUARD_REQUIRE_POSTGRES is set but {why}");
            eprintln!("skipped: {why} (apt-get install postgresql)");
        };
        let Some(bin) = bindir() else {
            unavailable(
                "no PostgreSQL server binaries were found (pg_config --bindir, initdb on PATH, /usr/lib/postgresql/*/bin)",
            );
            return None;
        };
        let run_as = if is_root() {
            let Some(prefix) = as_postgres() else {
                unavailable(
                    "this runs as root, and there is no `postgres` user (with runuser or su) to run the server as",
                );
                return None;
            };
            prefix
        } else {
            Vec::new()
        };
        // As `postgres`, every parent of the directory must be traversable:
        // /tmp is.
        let parent = if run_as.is_empty() {
            std::env::temp_dir()
        } else {
            PathBuf::from("/tmp")
        };
        let root = tempfile::Builder::new()
            .prefix("guard-pg-")
            .tempdir_in(&parent)
            .unwrap();
        if tls {
            make_certificates(root.path());
        }
        if !run_as.is_empty() {
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(root.path()));
        }
        // initdb creates it with the mode 0700 the server insists on.
        let data = root.path().join("data");
        run(server_command(&run_as, &bin.join("initdb"))
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "-D",
            ])
            .arg(&data)
            .current_dir(root.path()));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::File::create(root.path().join("postgres.log")).unwrap();
        let child = server_command(&run_as, &bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string()])
            .arg("-k")
            .arg(root.path())
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
            ])
            .args(if tls {
                vec![
                    "-c".to_string(),
                    "ssl=on".to_string(),
                    "-c".to_string(),
                    format!("ssl_cert_file={}", root.path().join("server.crt").display()),
                    "-c".to_string(),
                    format!("ssl_key_file={}", root.path().join("server.key").display()),
                ]
            } else {
                Vec::new()
            })
            .current_dir(root.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        // From here on, dropping it stops the server and removes the directory.
        let mut server = PgServer {
            bin,
            run_as,
            data,
            port,
            child: Some(child),
            root,
        };
        server.wait_ready();
        server.createdb("guard");
        Some(server)
    }

    /// The URL of database `guard`.
    pub fn url(&self) -> String {
        self.url_of("guard")
    }

    /// The URL of database `name` on this server.
    pub fn url_of(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// The server's TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The temporary directory holding the cluster (gone after drop).
    pub fn dir(&self) -> &Path {
        self.root.path()
    }

    /// Creates the empty database `name` (lower-case letters, digits and
    /// `_`) and returns its URL.
    pub fn fresh_database(&self, name: &str) -> String {
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "{name:?} is not a plain database name"
        );
        self.createdb(name);
        self.url_of(name)
    }

    /// Runs `sql` in `database` with psql; returns its unaligned, tuples-only
    /// output, trimmed. Panics when psql fails.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let port = self.port.to_string();
        run(Command::new(self.bin.join("psql")).args([
            "-X",
            "-q",
            "-t",
            "-A",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "postgres",
            "-d",
            database,
            "-c",
            sql,
        ]))
        .trim()
        .to_string()
    }

    fn createdb(&self, name: &str) {
        let port = self.port.to_string();
        run(Command::new(self.bin.join("createdb")).args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "postgres",
            name,
        ]));
    }

    /// The server's log so far.
    fn log(&self) -> String {
        std::fs::read_to_string(self.root.path().join("postgres.log")).unwrap_or_default()
    }

    /// Waits (up to 30 s) until the server takes connections.
    fn wait_ready(&mut self) {
        let port = self.port.to_string();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = Command::new(self.bin.join("pg_isready"))
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port,
                    "-U",
                    "postgres",
                    "-d",
                    "postgres",
                    "-t",
                    "2",
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return;
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                panic!(
                    "postgres exited ({status}) before taking connections:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "postgres did not take connections on port {port} within 30 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        // As root the child is runuser (or su), not the server: pg_ctl stops
        // the server itself. `immediate`: there is nothing to keep.
        let _ = server_command(&self.run_as, &self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["stop", "-m", "immediate", "-w"])
            .current_dir(self.root.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `cmd` to completion; its stdout, or a panic with its output.
fn run(cmd: &mut Command) -> String {
    let what = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `program`, run through `prefix` (as `postgres`) when there is one.
fn server_command(prefix: &[OsString], program: &Path) -> Command {
    match prefix.split_first() {
        None => Command::new(program),
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(program);
            c
        }
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The prefix that runs a program as the `postgres` user, if there is
/// such a user and a way to switch to it.
fn as_postgres() -> Option<Vec<OsString>> {
    let user = Command::new("id")
        .args(["-u", "postgres"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !user {
        return None;
    }
    if let Some(runuser) = find_program("runuser") {
        return Some(vec![
            runuser.into_os_string(),
            "-u".into(),
            "postgres".into(),
            "--".into(),
        ]);
    }
    let su = find_program("su")?;
    Some(vec![
        su.into_os_string(),
        "-s".into(),
        "/bin/sh".into(),
        "-c".into(),
        r#"exec "$0" "$@""#.into(),
        "postgres".into(),
        "--".into(),
    ])
}

/// `name` on PATH or in the usual system directories.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The directory holding every binary in [`NEEDED`].
fn bindir() -> Option<PathBuf> {
    let mut candidates = Vec::new();
    let pg_config = Command::new("pg_config")
        .arg("--bindir")
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success());
    if let Some(o) = pg_config {
        candidates.push(PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    }
    // Often a symbolic link into the real directory (with psql beside it).
    if let Some(initdb) = find_program("initdb").and_then(|p| std::fs::canonicalize(p).ok()) {
        candidates.extend(initdb.parent().map(Path::to_path_buf));
    }
    // Debian and Ubuntu: /usr/lib/postgresql/<major>/bin, newest first.
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((major, e.path().join("bin")))
        })
        .collect();
    versions.sort();
    candidates.extend(versions.into_iter().rev().map(|(_, dir)| dir));
    candidates
        .into_iter()
        .find(|dir| NEEDED.iter().all(|b| dir.join(b).is_file()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throwaway_cluster_starts_and_takes_connections() {
    let Some(pg) = PgServer::start().await else {
        return;
    };
    let url = pg.url();
    assert_eq!(
        url,
        format!("postgres://postgres@127.0.0.1:{}/guard", pg.port())
    );
    assert_eq!(pg.psql("guard", "select 1"), "1");
    // Over TCP, as the URL says.
    assert!(std::net::TcpStream::connect(("127.0.0.1", pg.port())).is_ok());
    let other = pg.fresh_database("guard_other");
    assert_eq!(other, pg.url_of("guard_other"));
    assert_eq!(
        pg.psql("guard_other", "select current_database()"),
        "guard_other"
    );
    assert_eq!(
        pg.psql(
            "guard_other",
            "select count(*) from pg_tables where schemaname not in ('pg_catalog', 'information_schema')"
        ),
        "0",
        "a fresh database is empty"
    );
    // Dropped: stopped and removed.
    let (port, dir) = (pg.port(), pg.dir().to_path_buf());
    drop(pg);
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    assert!(!dir.exists());
}

/// A CA and a server certificate for 127.0.0.1 it issued, in `dir`
/// (`ca.crt`, `server.crt`, `server.key`): a CA's own certificate cannot
/// serve as a server's (rustls refuses it), as in real deployments.
fn make_certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl (installed with postgresql) is needed for the TLS test");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=guard test CA",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]);
    // The server refuses a key others may read.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.join("server.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
}
