//! Every template parameter a message names exists in the deployment's template: a message that
//! tells an operator to set "the template's X" must name a parameter they can find.

use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir)
        .expect("readable source directory")
        .flatten()
    {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The parameters of `deploy/template.yaml` (two-space keys under `Parameters:`).
fn template_parameters(root: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(root.join("deploy/template.yaml")).expect("template");
    let mut in_parameters = false;
    let mut names = Vec::new();
    for line in text.lines() {
        if !line.starts_with(' ') && !line.is_empty() {
            in_parameters = line == "Parameters:";
            continue;
        }
        if in_parameters {
            if let Some(name) = line.strip_prefix("  ").and_then(|l| l.strip_suffix(':')) {
                if !name.starts_with(' ') {
                    names.push(name.to_string());
                }
            }
        }
    }
    names
}

#[test]
fn every_template_parameter_a_message_names_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let parameters = template_parameters(&root);
    assert!(parameters.len() > 10, "parameters found: {parameters:?}");
    let mut files = Vec::new();
    for krate in std::fs::read_dir(root.join("crates"))
        .expect("crates")
        .flatten()
    {
        sources(&krate.path().join("src"), &mut files);
    }
    let mut named = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).expect("source");
        for (i, _) in text.match_indices("template's ") {
            let rest = &text[i + "template's ".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            if !name.starts_with(|c: char| c.is_ascii_uppercase()) {
                continue;
            }
            named += 1;
            assert!(
                parameters.contains(&name),
                "{} names the template's {name}, which deploy/template.yaml does not have (it has {parameters:?})",
                file.display()
            );
        }
    }
    assert!(
        named >= 5,
        "only {named} names found: the scan would be vacuous"
    );
}

#[test]
fn every_setting_s_parameter_sets_its_variable_in_the_template() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let params = template_parameters(&root);
    let text = std::fs::read_to_string(root.join("deploy/template.yaml")).expect("template");
    for s in keyturn_core::config::SETTINGS {
        let Some(param) = s.parameter else { continue };
        assert!(
            params.iter().any(|p| p == param),
            "{param} ({}) is not a parameter",
            s.var
        );
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{}:", s.var)))
            .unwrap_or_else(|| panic!("the function's environment does not set {}", s.var));
        assert!(
            line.contains(param),
            "{} is set from {line:?}, not {param}",
            s.var
        );
    }
}
