//! The commented guard.toml that `guard config template` prints: every key
//! at its default, with a line on what it is for. The tests in `config`
//! check that it parses to the defaults.

/// A commented configuration with every key at its default, for
/// `guard config template`.
pub const TEMPLATE: &str = r#"# guard.toml — configuration for guard.
# Every section is optional. String values may use ${ENV_VAR}; an unset
# variable is an error (write $${ for a literal "${").

# GitHub Actions: REST API for logs and re-runs, webhook signature secret.
[github]
api_url = "https://api.github.com"      # GitHub Enterprise: https://HOST/api/v3
token = "${GITHUB_TOKEN}"               # needs actions:write to re-run jobs
webhook_secret = "${GUARD_GITHUB_WEBHOOK_SECRET}"
annotate = "commit-comment"             # or "check-run" (GitHub App token)
repositories = []                       # ["owner/repo", …]: failed jobs looked for by catch-up
# When the webhooks come from a GitHub App, catch-up also asks GitHub to
# redeliver the App's deliveries guard missed (GET /app/hook/deliveries).
# [github.app]
# id = 123456
# private_key_file = "/etc/guard/github-app.pem"   # or private_key = "${GITHUB_APP_KEY}"

# GitLab CI: job traces, retries and notes; X-Gitlab-Token secret.
[gitlab]
url = "https://gitlab.com"
token = "${GITLAB_TOKEN}"
webhook_secret = "${GUARD_GITLAB_WEBHOOK_SECRET}"
projects = []                           # ["group/project" or a numeric id, …]: for catch-up

# Jenkins: consoleText, build and stop with API-token basic auth.
[jenkins]
url = "https://jenkins.example.com"
user = "guard"
token = "${JENKINS_TOKEN}"
webhook_secret = "${GUARD_JENKINS_WEBHOOK_SECRET}"
jobs = []                               # ["folder/job", …] (or job/folder/job/name): for catch-up

# Plugins get `log` and their own `kv` namespace; everything else is denied
# until granted here, per plugin id. Grants:
#   ci.rerun-job  ci.rerun-failed-jobs  ci.clear-caches  ci.cancel  ci.annotate
#   exec:<program>     run an allow-listed program, e.g. exec:npm
#   http:<host>        HTTP(S) to that host only, e.g. http:status.npmjs.org
#   fs:<root>          read-only files under a root named in fs_roots
# [plugins.my-healer]
# grants = ["ci.rerun-job", "exec:npm", "fs:workspace"]
# fs_roots = { workspace = "/srv/ci/workspace" }
# exec_args = { npm = ["cache (clean|verify).*"] }   # arguments must fully match one
# sha256 = "…"       # pin the plugin file: a different file is refused
# enabled = true

# Healing budgets. max_retries_per_job has a hard cap of 5.
[heal]
max_retries_per_job = 2
max_retries_per_repo_hour = 20
backoff_base_secs = 30
max_attempt = 5

# Pattern packs from --plugins: require an Ed25519 signature (PACK.wasm.sig,
# made with `guard pack sign`) by one of these public keys.
[packs]
require_signatures = false
trusted_keys = []

# The daemon (guard run): listener, intake and workers.
[server]
listen = "127.0.0.1:8700"
workers = 16                     # events processed at once (each mostly waits: downloads, flushes, API calls)
max_body_bytes = 10485760        # larger webhook bodies get 413
rate_limit_per_minute = 1200     # per endpoint and client address; 429 beyond
request_timeout_secs = 30        # slow clients are cut off (408)
max_event_attempts = 5           # then the event goes to the dead letters (guard status)
max_log_bytes = 268435456        # job logs are cut beyond this
dedupe_days = 7                  # delivery ids remembered to ignore replays
retention_days = 30              # job records kept for the API and the dashboard
audit_days = 365                 # the audit trail and security events kept
# api_token = "${GUARD_API_TOKEN}"   # require a bearer token on /api/*

# Shared PostgreSQL database, for several replicas of guard run (README:
# Scaling out). Absent: the embedded sled database under --data, which
# belongs to one process. GUARD_STORE_URL overrides url. Replicas claim
# events with a lease of [server] lease_secs (default 30); migrations are
# applied at start-up.
# [store]
# url = "postgres://user:password@host:5432/guard?sslmode=require"   # TLS, checked against public CAs
# ca_file = "/etc/guard/db-ca.pem"   # a private CA for the server's certificate (turns TLS on)

# Catch-up after downtime: webhooks sent while guard was down are not sent
# again, so at start-up and then every interval_secs the daemon asks each
# platform for the failed jobs of [github] repositories, [gitlab] projects
# and [jenkins] jobs since it last looked, and queues those it has not seen.
[catch_up]
interval_secs = 300       # 0 disables catch-up
lookback_hours = 24       # how far back the first look at an item goes (≤ 24 × dedupe_days)
max_jobs = 500            # failed jobs queued per pass at most (newest first; the next passes list the rest)

# Sandbox limits applied to every plugin call.
[limits]
memory_mib = 64           # linear memory per plugin instance
cpu_ms = 2000             # CPU time per call (epoch interruption)
call_timeout_ms = 10000   # wall-clock time per call, host calls included
scan_deadline_ms = 30000  # all calls of one detector on one log; then its answer is dropped
heal_deadline_ms = 60000  # one heal in all (instantiate + heal)
test_rerun_ms = 600000    # one re-run of the user's failed tests under guard exec (heal clocks grow by it)
max_findings = 200        # findings kept per detector per log
max_line_bytes = 8192     # longer log lines are cut
chunk_bytes = 262144      # log bytes per detector feed call
plugin_output_bytes = 65536
"#;
