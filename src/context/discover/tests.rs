use super::*;
use crate::settings::Origin;

use crate::context::tests::env;

fn vars(f: &Findings) -> Vec<(&str, &str)> {
    f.vars.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

const MLFLOW: &str = "azureml://westeurope.api.azureml.ms/mlflow/v1.0/subscriptions/0f8fad5b-d9cb-469f-a165-70867728950e/resourceGroups/rg-ml/providers/Microsoft.MachineLearningServices/workspaces/ws-prod";

#[test]
fn mlflow_uri_gives_region_cloud_and_workspace() {
    let f = mlflow_uri(MLFLOW);
    assert_eq!(f.cloud, Some(Cloud::Public));
    assert_eq!(
        vars(&f),
        [
            ("region", "westeurope"),
            ("subscription", "0f8fad5b-d9cb-469f-a165-70867728950e"),
            ("resource_group", "rg-ml"),
            ("workspace_name", "ws-prod")
        ]
    );
}

#[test]
fn mlflow_uri_of_a_sovereign_cloud() {
    let f = mlflow_uri("azureml://usgovvirginia.api.ml.azure.us/mlflow/v1.0/workspaces/gov-ws?x=1");
    assert_eq!(f.cloud, Some(Cloud::Usgov));
    assert_eq!(
        vars(&f),
        [("region", "usgovvirginia"), ("workspace_name", "gov-ws")]
    );
}

#[test]
fn other_or_broken_mlflow_uris_give_nothing() {
    assert_eq!(mlflow_uri("http://localhost:5000"), Findings::default());
    assert_eq!(mlflow_uri("file:///tmp/mlruns"), Findings::default());
    assert!(mlflow_uri("azureml://").vars.is_empty());
    assert!(
        mlflow_uri("azureml://user:secret@westeurope.api.azureml.ms/x")
            .vars
            .is_empty()
    );
    let f = mlflow_uri("azureml://example.com/mlflow/v1.0/workspaces/bad name");
    assert_eq!((f.cloud, f.vars.len()), (None, 0));
}

#[test]
fn job_variables() {
    let f = job_env(&env(&[
        ("AZUREML_ARM_WORKSPACE_NAME", "ws1"),
        (
            "AZUREML_WORKSPACE_ID",
            "0F8FAD5B-D9CB-469F-A165-70867728950E",
        ),
        (
            "AZUREML_SERVICE_ENDPOINT",
            "https://chinaeast2.api.ml.azure.cn/",
        ),
        ("AZUREML_ARM_RESOURCEGROUP", "rg"),
    ]));
    assert_eq!(f.cloud, Some(Cloud::China));
    assert_eq!(
        vars(&f),
        [
            ("workspace_name", "ws1"),
            ("workspace_id", "0f8fad5b-d9cb-469f-a165-70867728950e"),
            ("resource_group", "rg"),
            ("region", "chinaeast2")
        ]
    );
}

#[test]
fn malformed_values_are_dropped() {
    let f = job_env(&env(&[
        ("AZUREML_WORKSPACE_ID", "not-a-guid"),
        ("AZUREML_SERVICE_ENDPOINT", "westeurope"),
        ("AZUREML_ARM_WORKSPACE_NAME", "   "),
    ]));
    assert_eq!(f, Findings::default());
    assert!(
        ci_env(&env(&[("CI_NAME", "bad name"), ("CI_WORKSPACE", "ws/..")]))
            .vars
            .is_empty()
    );
    assert!(
        ci_env(&env(&[
            ("CI_NAME", "codeship"),
            ("CI_RESOURCE_GROUP", "rg")
        ]))
        .vars
        .is_empty()
    );
    assert!(
        batch_env(&env(&[("AZ_BATCH_ACCOUNT_URL", "::")]))
            .vars
            .is_empty()
    );
}

#[test]
fn batch_account_is_the_host() {
    let f = batch_env(&env(&[(
        "AZ_BATCH_ACCOUNT_URL",
        "https://MyBatch.westeurope.batch.azure.com/",
    )]));
    assert_eq!(
        vars(&f),
        [("batch_account", "mybatch.westeurope.batch.azure.com")]
    );
}

#[test]
fn nbvm_lines() {
    let text = "# compute instance\ninstance=ci-alice\nexport WORKSPACE_NAME=\"ws-1\"\n\nlocation = WestEurope\nnonsense\nunknown=1\nresourceGroup='rg'\ninstance=ignored-dup\n";
    let f = nbvm(text, ".nbvm");
    assert_eq!(
        vars(&f),
        [
            ("instance", "ci-alice"),
            ("workspace_name", "ws-1"),
            ("region", "westeurope"),
            ("resource_group", "rg"),
            ("instance", "ignored-dup")
        ]
    );
    assert!(
        nbvm("instance=bad_name!\nregion=west europe\n", ".nbvm")
            .vars
            .is_empty()
    );
}

#[test]
fn api_hosts() {
    assert_eq!(
        region_of_api_host("westeurope.api.azureml.ms"),
        Some(("westeurope", Cloud::Public))
    );
    assert_eq!(
        region_of_api_host("usgovarizona.api.ml.azure.us"),
        Some(("usgovarizona", Cloud::Usgov))
    );
    assert_eq!(region_of_api_host("api.azureml.ms"), None);
    assert_eq!(region_of_api_host("a.b.api.azureml.ms"), None);
    assert_eq!(
        region_of_api_host("westeurope.experiments.azureml.net"),
        None
    );
}

#[test]
fn region_names_say_the_cloud() {
    assert_eq!(cloud_of_region("usgovvirginia"), Some(Cloud::Usgov));
    assert_eq!(cloud_of_region("usdodeast"), Some(Cloud::Usgov));
    assert_eq!(cloud_of_region("chinanorth3"), Some(Cloud::China));
    assert_eq!(cloud_of_region("westeurope"), None);
}

#[test]
fn imds_endpoints() {
    assert_eq!(
        parse_imds_endpoint("http://169.254.169.254").unwrap(),
        "169.254.169.254:80".parse().unwrap()
    );
    assert_eq!(
        parse_imds_endpoint("http://127.0.0.1:8080/").unwrap(),
        "127.0.0.1:8080".parse().unwrap()
    );
    assert_eq!(
        parse_imds_endpoint("http://[::1]:81").unwrap(),
        "[::1]:81".parse().unwrap()
    );
    assert!(
        parse_imds_endpoint("https://169.254.169.254")
            .unwrap_err()
            .contains("plain HTTP")
    );
    assert!(
        parse_imds_endpoint("http://metadata.internal")
            .unwrap_err()
            .contains("IP address")
    );
    assert!(
        parse_imds_endpoint("http://169.254.169.254/metadata")
            .unwrap_err()
            .contains("without a path")
    );
    assert!(parse_imds_endpoint("169.254.169.254").is_err());
}

/// Discovery settings as if given by flags.
fn at_root(enabled: bool, imds: &str, node_root: &str) -> Settings {
    fn flag<T>(value: T) -> Setting<T> {
        Setting {
            value,
            origin: Origin::flag("--test"),
        }
    }
    Settings {
        enabled: flag(enabled),
        imds: flag(imds.parse().unwrap()),
        node_root: flag(node_root.into()),
    }
}

#[test]
fn settings_layers() {
    let file = ConfigFile::parse(
        Path::new("c.toml"),
        "discover = false\nimds-endpoint = \"http://127.0.0.1:9\"\n",
    )
    .unwrap();
    let s = Settings::resolve(Flags::default(), &env(&[]), &file).unwrap();
    assert_eq!((s.enabled.value, s.imds.value.port()), (false, 9));
    assert_eq!(s.imds.origin.place().as_deref(), Some("c.toml:2"));
    let s = Settings::resolve(
        Flags::default(),
        &env(&[("VNETPROBE_DISCOVER", "1")]),
        &file,
    )
    .unwrap();
    assert!(s.enabled.value);
    assert_eq!(s.enabled.origin, Origin::env("VNETPROBE_DISCOVER"));
    let flags = Flags {
        no_discover: true,
        imds_endpoint: Some("http://127.0.0.2:7"),
        node_root: None,
    };
    let s = Settings::resolve(flags, &env(&[("VNETPROBE_DISCOVER", "yes")]), &file).unwrap();
    assert_eq!(
        (
            s.enabled.value,
            s.imds.value.port(),
            s.node_root.value.as_path()
        ),
        (false, 7, Path::new("/"))
    );
    let d = Settings::resolve(Flags::default(), &env(&[]), &ConfigFile::default()).unwrap();
    assert_eq!(
        (d.enabled.value, d.imds.value.to_string().as_str()),
        (true, "169.254.169.254:80")
    );
}

#[test]
fn settings_errors_name_their_origin() {
    let e = Settings::resolve(
        Flags::default(),
        &env(&[("VNETPROBE_DISCOVER", "maybe")]),
        &ConfigFile::default(),
    );
    assert!(
        e.unwrap_err()
            .to_string()
            .starts_with("VNETPROBE_DISCOVER=\"maybe\"")
    );
    let flags = Flags {
        imds_endpoint: Some("ftp://x"),
        ..Flags::default()
    };
    assert!(
        Settings::resolve(flags, &env(&[]), &ConfigFile::default())
            .unwrap_err()
            .to_string()
            .starts_with("--imds-endpoint")
    );
    let file =
        ConfigFile::parse(Path::new("c.toml"), "\nimds-endpoint = \"http://name\"\n").unwrap();
    assert!(
        Settings::resolve(Flags::default(), &env(&[]), &file)
            .unwrap_err()
            .to_string()
            .starts_with("c.toml:2: field `imds-endpoint`")
    );
    let flags = Flags {
        node_root: Some(Path::new("/nonexistent/vnetprobe")),
        ..Flags::default()
    };
    assert!(
        Settings::resolve(flags, &env(&[]), &ConfigFile::default())
            .unwrap_err()
            .to_string()
            .starts_with("--node-root")
    );
}

#[test]
fn discovery_ranks_below_flags_and_among_sources() {
    let mut ctx = Context::build(
        None,
        &[("workspace_name".into(), "flagws".into())],
        &env(&[]),
        &ConfigFile::default(),
    )
    .unwrap();
    let settings = at_root(true, "127.0.0.1:9", "/nonexistent");
    let e = env(&[
        ("CI_NAME", "ci1"),
        ("CI_WORKSPACE", "ciws"),
        ("MLFLOW_TRACKING_URI", MLFLOW),
        ("AZUREML_ARM_RESOURCEGROUP", "jobrg"),
    ]);
    discover(&mut ctx, &settings, &e, false);
    let s = ctx.sourced();
    let got = |k: &str| (s[k].value.as_str(), s[k].source);
    assert_eq!(got("workspace_name"), ("flagws", Source::Flag));
    assert_eq!(got("instance"), ("ci1", Source::Ci));
    assert_eq!(got("resource_group"), ("jobrg", Source::Job));
    assert_eq!(got("region"), ("westeurope", Source::Mlflow));
    assert_eq!(got("cloud"), ("public", Source::Mlflow));
}

#[test]
fn disabled_discovery_offers_nothing() {
    let mut ctx = Context::default();
    let settings = at_root(false, "127.0.0.1:9", "/");
    discover(&mut ctx, &settings, &env(&[("CI_NAME", "ci1")]), false);
    assert_eq!(ctx, Context::default());
}

#[test]
fn sovereign_region_implies_the_cloud() {
    let mut ctx = Context::default();
    let settings = at_root(true, "127.0.0.1:9", "/nonexistent");
    discover(
        &mut ctx,
        &settings,
        &env(&[(
            "AZUREML_SERVICE_ENDPOINT",
            "https://usgovvirginia.api.azureml.ms",
        )]),
        false,
    );
    // The endpoint's domain says public; the region's name says usgov. The domain wins: it
    // is what the workspace's clients actually use.
    assert_eq!(ctx.cloud(), Cloud::Public);
    let mut ctx = Context::build(
        None,
        &[("region".into(), "chinanorth3".into())],
        &env(&[]),
        &ConfigFile::default(),
    )
    .unwrap();
    discover(&mut ctx, &settings, &env(&[]), false);
    assert_eq!(
        (ctx.cloud(), ctx.sourced()["cloud"].source),
        (Cloud::China, Source::Derived)
    );
}
