#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

//! The security scanners, offline, as `make test` runs them:
//!
//! - checkov (`infra/scanners/checkov.yaml`) on `helm template` of the chart
//!   (required values only, and `ci/full-values.yaml`) and on every
//!   `infra/cloudformation/*.yaml`: no failed check, every exception in the
//!   config has a reason and still fires, and every skipped Kubernetes check
//!   passes once the values ask for it.
//! - parliament (`infra/scanners/parliament.yaml`) on every `infra/iam/*.json`
//!   with its `${}` placeholders replaced: no finding beyond the documented
//!   false positives of the trust policies.
//!
//! Both come from PyPI into their own venv (`infra/local/bootstrap.sh
//! scanners`); missing is a failure that says so, never a skip.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use alert_manager_tests::iam::substitute;
use alert_manager_tests::workspace_root;
use serde_json::Value as Json;
use serde_yaml::Value as Yaml;

const NAMESPACE: &str = "alert-manager-system";
const RELEASE: &str = "alert-manager-agent";
const REQUIRED: [&str; 4] = [
    "--set",
    "topicArn=arn:aws:sns:us-east-1:123456789012:alerts",
    "--set",
    "clusterName=test-cluster",
];
const CHECKOV_CONFIG: &str = "infra/scanners/checkov.yaml";
const PARLIAMENT_CONFIG: &str = "infra/scanners/parliament.yaml";
/// A scanner that has not finished by then is stuck (on the network?).
const SCANNER_DEADLINE: Duration = Duration::from_secs(180);

/// `$ALERT_MANAGER_CACHE` as the bootstrap computes it (default
/// `~/.cache/alert-manager`).
fn cache_dir() -> PathBuf {
    std::env::var_os("ALERT_MANAGER_CACHE")
        .filter(|c| !c.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("XDG_CACHE_HOME")
                .filter(|c| !c.is_empty())
                .map(|c| PathBuf::from(c).join("alert-manager"))
        })
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/alert-manager")))
        .unwrap_or_else(|| PathBuf::from(".cache/alert-manager"))
}

/// A program of the scanners' venv (`$ALERT_MANAGER_CACHE/scanners`).
fn scanner_bin(program: &str) -> PathBuf {
    let path = cache_dir().join("scanners/bin").join(program);
    assert!(
        path.exists(),
        "{} is missing; run `make bootstrap` (or `infra/local/bootstrap.sh scanners`), which \
         installs checkov and parliament from PyPI into {}",
        path.display(),
        cache_dir().join("scanners").display()
    );
    path
}

/// Helm 4 as `infra/local/bootstrap.sh helm` installs it (see tests/tests/helm.rs).
fn helm_bin() -> PathBuf {
    let path = std::env::var_os("ALERT_MANAGER_HELM")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_dir().join("bin/helm"));
    assert!(
        path.exists(),
        "helm is missing at {}; run `make bootstrap` (or `infra/local/bootstrap.sh helm`)",
        path.display()
    );
    path
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `cmd` to completion within [`SCANNER_DEADLINE`], with stdin closed and
/// every proxy pointed at a closed local port, so a scanner that tries the
/// network fails at once instead of reaching it or hanging.
fn run_offline(mut cmd: Command, what: &str) -> Output {
    cmd.current_dir(workspace_root())
        .env("HTTPS_PROXY", "http://127.0.0.1:9")
        .env("HTTP_PROXY", "http://127.0.0.1:9")
        .env("https_proxy", "http://127.0.0.1:9")
        .env("http_proxy", "http://127.0.0.1:9")
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .env_remove("BC_API_KEY")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        stdout.read_to_end(&mut b).map(|_| b)
    });
    let err_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        stderr.read_to_end(&mut b).map(|_| b)
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > SCANNER_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish in {SCANNER_DEADLINE:?} (is it trying the network?)");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: out_reader.join().unwrap().unwrap(),
        stderr: err_reader.join().unwrap().unwrap(),
    }
}

/// `helm template` of the chart with the required values plus `extra`.
fn render(extra: &[&str]) -> String {
    let chart = workspace_root().join("infra/helm/alert-manager-agent");
    let chart = chart.display().to_string();
    let home = tempfile::tempdir().unwrap();
    let mut args = vec!["template", RELEASE, &chart, "--namespace", NAMESPACE];
    args.extend_from_slice(extra);
    let out = Command::new(helm_bin())
        .args(&args)
        .current_dir(workspace_root())
        .env("HELM_CONFIG_HOME", home.path().join("config"))
        .env("HELM_CACHE_HOME", home.path().join("cache"))
        .env("HELM_DATA_HOME", home.path().join("data"))
        .env("KUBECONFIG", home.path().join("no-kubeconfig"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run helm: {e}"));
    assert!(
        out.status.success(),
        "helm {args:?} failed:\n{}",
        text(&out)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn render_with(extra: &[&str]) -> String {
    let mut args = REQUIRED.to_vec();
    args.extend_from_slice(extra);
    render(&args)
}

/// The chart rendered with the required values only and with
/// `ci/full-values.yaml`, written as `chart-default.yaml` and
/// `chart-full.yaml` into `dir`.
fn write_chart_renders(dir: &Path) -> Vec<PathBuf> {
    let full = workspace_root()
        .join("infra/helm/alert-manager-agent/ci/full-values.yaml")
        .display()
        .to_string();
    let default = dir.join("chart-default.yaml");
    std::fs::write(&default, render(&REQUIRED)).unwrap();
    let full_file = dir.join("chart-full.yaml");
    std::fs::write(&full_file, render(&["-f", &full])).unwrap();
    vec![default, full_file]
}

/// Every `infra/cloudformation/*.yaml`.
fn templates() -> Vec<PathBuf> {
    let dir = workspace_root().join("infra/cloudformation");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no template in {}", dir.display());
    files
}

/// The checked-in checkov config.
fn checkov_config() -> serde_yaml::Mapping {
    let path = workspace_root().join(CHECKOV_CONFIG);
    let text = std::fs::read_to_string(&path).unwrap();
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{CHECKOV_CONFIG}: {e}"))
}

/// The checks `infra/scanners/checkov.yaml` skips.
fn skipped_checks() -> BTreeSet<String> {
    checkov_config()
        .get("skip-check")
        .and_then(Yaml::as_sequence)
        .unwrap_or_else(|| panic!("{CHECKOV_CONFIG} has no skip-check list"))
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect()
}

#[derive(Clone, Copy)]
enum Config {
    /// `infra/scanners/checkov.yaml` as checked in.
    CheckedIn,
    /// The same without its skip-check list.
    WithoutSkips,
}

/// One checkov result: check id and name, resource, file and lines.
#[derive(Debug, Clone)]
struct Finding {
    check: String,
    name: String,
    resource: String,
    file: String,
    lines: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}) on {} in {} lines {}",
            self.check, self.name, self.resource, self.file, self.lines
        )
    }
}

struct Report {
    passed: Vec<Finding>,
    failed: Vec<Finding>,
    raw: String,
}

impl Report {
    fn failures(&self) -> String {
        self.failed
            .iter()
            .map(|f| format!("  {f}"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Results of `check` in the file named `file`.
    fn results(&self, check: &str, file: &str) -> (usize, usize) {
        let count = |v: &[Finding]| {
            v.iter()
                .filter(|f| f.check == check && f.file.ends_with(file))
                .count()
        };
        (count(&self.passed), count(&self.failed))
    }
}

fn findings(results: &Json, key: &str) -> Vec<Finding> {
    results[key]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| Finding {
                    check: c["check_id"].as_str().unwrap_or_default().to_string(),
                    name: c["check_name"].as_str().unwrap_or_default().to_string(),
                    resource: c["resource"].as_str().unwrap_or_default().to_string(),
                    file: c["file_abs_path"]
                        .as_str()
                        .or(c["file_path"].as_str())
                        .unwrap_or_default()
                        .to_string(),
                    lines: c["file_line_range"]
                        .as_array()
                        .map(|r| {
                            r.iter()
                                .map(|n| n.to_string())
                                .collect::<Vec<_>>()
                                .join("-")
                        })
                        .unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// checkov `--framework framework` on `files` with the JSON report; panics
/// unless checkov produced one and parsed every file.
fn checkov(config: Config, framework: &str, files: &[PathBuf], extra: &[&str]) -> Report {
    let dir = tempfile::tempdir().unwrap();
    let config_file = match config {
        Config::CheckedIn => workspace_root().join(CHECKOV_CONFIG),
        Config::WithoutSkips => {
            let mut c = checkov_config();
            c.remove("skip-check");
            let path = dir.path().join("checkov-without-skips.yaml");
            std::fs::write(&path, serde_yaml::to_string(&c).unwrap()).unwrap();
            path
        }
    };
    let mut cmd = Command::new(scanner_bin("checkov"));
    cmd.arg("--config-file")
        .arg(&config_file)
        // Also on the command line: never download policies, whatever the config says.
        .args(["--skip-download", "--framework", framework, "-o", "json"])
        .args(extra);
    for f in files {
        cmd.arg("-f").arg(f);
    }
    let what = format!("checkov --framework {framework} on {files:?}");
    let out = run_offline(cmd, &what);
    let raw = String::from_utf8_lossy(&out.stdout).into_owned();
    let json: Json = serde_json::from_str(&raw).unwrap_or_else(|e| {
        panic!(
            "{what}: no JSON report ({e}), exit {}:\n{}",
            out.status,
            text(&out)
        )
    });
    let reports: Vec<Json> = match json {
        Json::Array(a) => a,
        one => vec![one],
    };
    assert_eq!(
        reports.len(),
        1,
        "{what}: expected one {framework} report:\n{raw}"
    );
    let report = &reports[0];
    assert_eq!(
        report["check_type"].as_str(),
        Some(framework),
        "{what}: checkov scanned nothing (a file it does not recognise?):\n{raw}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results = &report["results"];
    let errors = results["parsing_errors"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        errors.is_empty(),
        "{what}: checkov could not parse {errors:?}"
    );
    let report = Report {
        passed: findings(results, "passed_checks"),
        failed: findings(results, "failed_checks"),
        raw,
    };
    // Every file was scanned: each has results.
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            report
                .passed
                .iter()
                .chain(&report.failed)
                .any(|r| r.file.ends_with(&name)),
            "{what}: no result for {name}: checkov did not scan it\n{}",
            report.raw
        );
    }
    report
}

fn assert_clean(report: &Report, files: &[PathBuf], what: &str) {
    assert!(
        report.failed.is_empty(),
        "checkov: {} new finding(s) in {what}; fix them, or skip the check in {CHECKOV_CONFIG} \
         with a one-line reason:\n{}",
        report.failed.len(),
        report.failures()
    );
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let passed = report
            .passed
            .iter()
            .filter(|r| r.file.ends_with(&name))
            .count();
        assert!(passed > 0, "checkov: no check passed on {name}");
    }
}

#[test]
fn checkov_passes_both_chart_renders_with_only_the_documented_exceptions() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_chart_renders(dir.path());
    let report = checkov(Config::CheckedIn, "kubernetes", &files, &[]);
    assert_clean(
        &report,
        &files,
        "the chart renders (default and full values)",
    );
    // The NetworkPolicy (on by default) is what checkov's graph check looks for.
    for file in ["chart-default.yaml", "chart-full.yaml"] {
        assert_eq!(
            report.results("CKV2_K8S_6", file),
            (1, 0),
            "{file}: CKV2_K8S_6 (a NetworkPolicy selects the pod) must pass"
        );
    }
}

#[test]
fn checkov_passes_every_cloudformation_template_with_only_the_documented_exceptions() {
    let files = templates();
    let report = checkov(Config::CheckedIn, "cloudformation", &files, &[]);
    assert_clean(&report, &files, "infra/cloudformation");
}

#[test]
fn every_checkov_exception_has_a_reason_and_still_fires() {
    let skipped = skipped_checks();
    assert!(!skipped.is_empty());
    // A one-line reason on the skip's own line.
    let text = std::fs::read_to_string(workspace_root().join(CHECKOV_CONFIG)).unwrap();
    for check in &skipped {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("- {check}")))
            .unwrap_or_else(|| panic!("{CHECKOV_CONFIG}: no `- {check}` line"));
        let reason = line.split_once('#').map(|(_, r)| r.trim()).unwrap_or("");
        assert!(
            reason.len() >= 20,
            "{CHECKOV_CONFIG}: {check} needs a one-line reason comment: {line:?}"
        );
    }

    // Without the skips, exactly the skipped checks fail, each somewhere.
    let dir = tempfile::tempdir().unwrap();
    let charts = write_chart_renders(dir.path());
    let mut failed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (framework, files) in [("kubernetes", charts), ("cloudformation", templates())] {
        for f in checkov(Config::WithoutSkips, framework, &files, &[]).failed {
            failed
                .entry(f.check.clone())
                .or_default()
                .push(f.to_string());
        }
    }
    for check in &skipped {
        assert!(
            failed.contains_key(check),
            "{check} is skipped in {CHECKOV_CONFIG} but fails nowhere any more: remove the \
             exception (failing now: {failed:#?})"
        );
    }
    let unexplained: Vec<&String> = failed
        .iter()
        .filter(|(c, _)| !skipped.contains(*c))
        .flat_map(|(_, f)| f)
        .collect();
    assert!(
        unexplained.is_empty(),
        "checkov findings that no exception covers:\n{unexplained:#?}"
    );
}

/// Each skipped Kubernetes check and the values that satisfy it: the
/// exception is only the default, not something the chart cannot do.
const OPT_IN: [(&str, &[&str]); 4] = [
    ("CKV_K8S_11", &["--set", "resources.limits.cpu=500m"]),
    (
        "CKV_K8S_43",
        &[
            "--set",
            "image.digest=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ],
    ),
    ("CKV_K8S_15", &["--set", "image.pullPolicy=Always"]),
    ("CKV_K8S_38", &["--set-string", "kubernetes.context=off"]),
];

#[test]
fn skipped_kubernetes_checks_pass_when_the_values_ask_for_it() {
    let k8s_skips: BTreeSet<String> = skipped_checks()
        .into_iter()
        .filter(|c| c.contains("K8S"))
        .collect();
    let proven: BTreeSet<String> = OPT_IN.iter().map(|(c, _)| c.to_string()).collect();
    assert_eq!(
        k8s_skips, proven,
        "every Kubernetes exception in {CHECKOV_CONFIG} needs its values here (OPT_IN)"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (check, values) in OPT_IN {
        let file = dir.path().join(format!("{check}.yaml"));
        std::fs::write(&file, render_with(values)).unwrap();
        files.push(file);
    }
    let checks = OPT_IN.map(|(c, _)| c).join(",");
    let report = checkov(
        Config::WithoutSkips,
        "kubernetes",
        &files,
        &["--check", &checks],
    );
    for (check, values) in OPT_IN {
        assert_eq!(
            report.results(check, &format!("{check}.yaml")),
            (1, 0),
            "{check} must pass on the Deployment rendered with {values:?}:\n{}",
            report.failures()
        );
    }
}

/// Every `infra/iam/*.json` with its placeholders replaced, written to `dir`;
/// the file names.
fn write_iam_files(dir: &Path) -> Vec<String> {
    let iam = workspace_root().join("infra/iam");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&iam).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = substitute(&name, &std::fs::read_to_string(&path).unwrap());
        std::fs::write(dir.join(&name), text).unwrap();
        names.push(name);
    }
    names.sort();
    assert!(names.len() >= 7, "infra/iam has only {names:?}");
    names
}

/// A parliament finding: issue, detail and the file it is in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct PolicyFinding {
    issue: String,
    detail: String,
    file: String,
}

/// `infra/scanners/parliament-run.py` (parliament's CLI with its
/// ignore_locations working) on every file of `dir`, with the community
/// auditors and every severity; with or without the checked-in config.
fn parliament(dir: &Path, with_config: bool) -> Vec<PolicyFinding> {
    let mut cmd = Command::new(scanner_bin("python3"));
    cmd.arg(workspace_root().join("infra/scanners/parliament-run.py"));
    if with_config {
        cmd.arg("--config")
            .arg(workspace_root().join(PARLIAMENT_CONFIG));
    }
    cmd.arg("--directory").arg(dir).args([
        "--json",
        "--include-community-auditors",
        "--minimum_severity",
        "INFO",
    ]);
    let out = run_offline(cmd, "parliament");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let findings: Vec<PolicyFinding> = stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Json = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("parliament printed a non-JSON line ({e}): {l}"));
            let path = f["location"]["filepath"].as_str().unwrap_or_default();
            PolicyFinding {
                issue: f["issue"].as_str().unwrap_or_default().to_string(),
                detail: f["detail"].to_string(),
                file: Path::new(path)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            }
        })
        .collect();
    // Exit 1 with findings, 0 without; anything else (or noise on stderr) is
    // parliament failing.
    let expected = i32::from(!findings.is_empty());
    assert_eq!(
        out.status.code(),
        Some(expected),
        "parliament failed:\n{}",
        text(&out)
    );
    findings
}

/// The exceptions infra/scanners/parliament.yaml documents: (issue, start
/// of the detail as JSON, the files it may appear in, by name).
type PolicyException = (&'static str, &'static str, fn(&str) -> bool);

fn trust_policy(f: &str) -> bool {
    f.ends_with("-trust-policy.json")
}
fn irsa_trust_policy(f: &str) -> bool {
    f == "irsa-trust-policy.json"
}
fn key_policy(f: &str) -> bool {
    f.contains("key-policy")
}
fn cross_account_policy(f: &str) -> bool {
    f == "enricher-policy-cross-account.json"
}

const POLICY_EXCEPTIONS: [PolicyException; 4] = [
    (
        "MALFORMED",
        "\"Statement contains neither Resource nor NotResource\"",
        trust_policy,
    ),
    (
        "UNKNOWN_FEDERATION_SOURCE",
        "\"arn:aws:iam::123456789012:oidc-provider/oidc.eks.",
        irsa_trust_policy,
    ),
    ("RESOURCE_STAR", "[\"kms:", key_policy),
    ("CREDENTIALS_EXPOSURE", "\"\"", cross_account_policy),
];

#[test]
fn parliament_finds_nothing_in_the_iam_policies_beyond_the_documented_exceptions() {
    let dir = tempfile::tempdir().unwrap();
    let names = write_iam_files(dir.path());

    // With the config: nothing.
    let findings = parliament(dir.path(), true);
    assert!(
        findings.is_empty(),
        "parliament findings in infra/iam (fix the policy, or document a false positive in \
         {PARLIAMENT_CONFIG}):\n{findings:#?}"
    );

    // Without it: only the documented exceptions, each still firing on
    // every file it names.
    let raw = parliament(dir.path(), false);
    for f in &raw {
        assert!(
            POLICY_EXCEPTIONS
                .iter()
                .any(|(issue, detail, files)| f.issue == *issue
                    && f.detail.starts_with(detail)
                    && files(&f.file)),
            "{PARLIAMENT_CONFIG} hides a finding that is not a documented exception: {f:?}"
        );
    }
    for (issue, _, files) in POLICY_EXCEPTIONS {
        let named: Vec<&String> = names.iter().filter(|n| files(n)).collect();
        assert!(
            !named.is_empty(),
            "{issue}: no file in infra/iam it applies to"
        );
        for file in named {
            assert!(
                raw.iter().any(|f| f.issue == issue && &f.file == file),
                "{issue} no longer fires on {file}: narrow or remove it in {PARLIAMENT_CONFIG}"
            );
        }
    }

    // The config does not mute parliament: a bad policy next to ours is
    // reported, with the config, and named.
    std::fs::write(
        dir.path().join("zz-control-policy.json"),
        r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
           "Action": "s3:GetObject", "Resource": "arn:aws:sns:us-east-1:123456789012:alerts"}]}"#,
    )
    .unwrap();
    let control = parliament(dir.path(), true);
    assert!(
        !control.is_empty() && control.iter().all(|f| f.file == "zz-control-policy.json"),
        "parliament must report the control policy (s3:GetObject on an SNS topic) and only \
         it: {control:#?}"
    );
}
