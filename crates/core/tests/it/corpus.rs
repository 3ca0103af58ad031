//! Reading the config corpus under `tests/corpus/`. Each file carries its expectations
//! in leading comments:
//!
//! ```text
//! # what: one line on what the file shows
//! # env: NAME=VALUE      environment seen by the loader (repeatable)
//! # expect: substring    must appear in the rendered errors (repeatable)
//! # not: substring       must not appear anywhere in the output (repeatable)
//! # count: N             exact number of errors
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct Case {
    pub path: PathBuf,
    pub text: String,
    pub env: BTreeMap<String, String>,
    pub expect: Vec<String>,
    pub not: Vec<String>,
    pub count: Option<usize>,
}

impl Case {
    pub fn name(&self) -> String {
        self.path.file_stem().unwrap().to_string_lossy().into_owned()
    }

    /// The case's environment as the loader's lookup function.
    pub fn lookup(&self) -> impl Fn(&str) -> Option<String> + '_ {
        |name| self.env.get(name).cloned()
    }
}

pub fn dir(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus").join(kind)
}

pub fn cases(kind: &str) -> Vec<Case> {
    let mut paths: Vec<PathBuf> =
        std::fs::read_dir(dir(kind)).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|x| x == "toml")).collect();
    paths.sort();
    paths.into_iter().map(read).collect()
}

fn read(path: PathBuf) -> Case {
    let text = std::fs::read_to_string(&path).unwrap();
    let mut case = Case { path, text: text.clone(), env: BTreeMap::new(), expect: Vec::new(), not: Vec::new(), count: None };
    for line in text.lines().take_while(|l| l.starts_with('#')) {
        let line = line.trim_start_matches('#').trim();
        if let Some(v) = line.strip_prefix("env:") {
            let (k, v) = v.trim().split_once('=').expect("env: NAME=VALUE");
            case.env.insert(k.to_owned(), v.to_owned());
        } else if let Some(v) = line.strip_prefix("expect:") {
            case.expect.push(v.trim().to_owned());
        } else if let Some(v) = line.strip_prefix("not:") {
            case.not.push(v.trim().to_owned());
        } else if let Some(v) = line.strip_prefix("count:") {
            case.count = Some(v.trim().parse().expect("count: N"));
        }
    }
    case
}
