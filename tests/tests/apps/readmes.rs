//! Each app's README shows its current topology (Mermaid from `describe`). `UPDATE_APP_READMES=1`
//! rewrites the pictures instead of failing.

use topology::{Application, Topology};

const BEGIN: &str = "<!-- topology:begin";
const END: &str = "<!-- topology:end -->";

fn check(app: &str, topology: Topology) {
    let path = format!("{}/../apps/{app}/README.md", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    let begin = text.find(BEGIN).unwrap_or_else(|| panic!("{path}: no `{BEGIN}` marker"));
    let body_start = begin + text[begin..].find('\n').expect("marker line") + 1;
    let end = text.find(END).unwrap_or_else(|| panic!("{path}: no `{END}` marker"));
    let picture = format!("```mermaid\n{}```\n", topology.describe().mermaid());
    if text[body_start..end] == picture {
        return;
    }
    if std::env::var("UPDATE_APP_READMES").is_ok() {
        std::fs::write(&path, format!("{}{picture}{}", &text[..body_start], &text[end..])).unwrap();
        return;
    }
    panic!("{path}: the topology picture is stale; run with UPDATE_APP_READMES=1");
}

#[test]
fn every_app_readme_shows_its_current_topology() {
    check("attribution", attribution::AttributionApp::topology().unwrap());
    check("fraud", fraud::FraudApp::topology().unwrap());
    check("shopper-features", shopper_features::ShopperFeaturesApp::topology().unwrap());
}
