//! A `likeness serve` child process for tests that need a real server process (signals,
//! several processes on one database), with small blocking HTTP helpers.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};

use reqwest::blocking::multipart::{Form, Part};
use reqwest::blocking::Client;
use reqwest::StatusCode;
use serde_json::Value;

use super::{model_dir, s};

/// A running `likeness serve`; killed when dropped.
pub struct ServeProcess {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    stderr: tempfile::NamedTempFile,
    client: Client,
}

impl ServeProcess {
    /// Start `likeness serve --db DB --addr 127.0.0.1:0 EXTRA…` and wait until it listens.
    pub fn start(db: &Path, extra: &[&str]) -> ServeProcess {
        let stderr = tempfile::NamedTempFile::new().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_likeness"))
            .args(["serve", "--db", s(db), "--addr", "127.0.0.1:0"])
            .args(extra)
            .env("LIKENESS_MODEL_DIR", model_dir())
            .env_remove("LIKENESS_API_KEY")
            .stdout(Stdio::piped())
            .stderr(stderr.reopen().unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let base = line.split("http://").nth(1).map(|r| format!("http://{}", r.trim().trim_end_matches('/')));
        let Some(base) = base else {
            child.kill().ok();
            child.wait().ok();
            panic!("serve did not start: {line:?}\n{}", std::fs::read_to_string(stderr.path()).unwrap_or_default());
        };
        ServeProcess { child: Some(child), base, stderr, client: Client::new() }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// `GET path` → (status, JSON body or Null).
    pub fn get(&self, path: &str) -> (StatusCode, Value) {
        let res = self.client.get(format!("{}{path}", self.base)).send().unwrap();
        (res.status(), res.json().unwrap_or(Value::Null))
    }

    /// `GET path` → (status, body bytes).
    pub fn get_bytes(&self, path: &str) -> (StatusCode, Vec<u8>) {
        let res = self.client.get(format!("{}{path}", self.base)).send().unwrap();
        (res.status(), res.bytes().unwrap().to_vec())
    }

    /// `POST path` with a JSON body.
    pub fn post_json(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let res = self.client.post(format!("{}{path}", self.base)).json(body).send().unwrap();
        (res.status(), res.json().unwrap_or(Value::Null))
    }

    /// Upload `bytes` as `name` into `collection` (`POST /api/collections/{c}/images`).
    pub fn upload(&self, collection: &str, bytes: Vec<u8>, name: &str) -> (StatusCode, Value) {
        self.upload_labelled(collection, bytes, name, None)
    }

    /// [`ServeProcess::upload`] with an optional `label` form field.
    pub fn upload_labelled(
        &self,
        collection: &str,
        bytes: Vec<u8>,
        name: &str,
        label: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut form = Form::new().part("image", Part::bytes(bytes).file_name(name.to_string()));
        if let Some(l) = label {
            form = form.text("label", l.to_string());
        }
        let res = self
            .client
            .post(format!("{}/api/collections/{collection}/images", self.base))
            .multipart(form)
            .send()
            .unwrap();
        (res.status(), res.json().unwrap_or(Value::Null))
    }

    /// Search `collection` by an uploaded image.
    pub fn search_image(&self, collection: &str, bytes: Vec<u8>, feature: &str) -> (StatusCode, Value) {
        let form =
            Form::new().part("image", Part::bytes(bytes).file_name("q.png")).text("feature", feature.to_string());
        let url = format!("{}/api/collections/{collection}/search/image", self.base);
        let res = self.client.post(url).multipart(form).send().unwrap();
        (res.status(), res.json().unwrap_or(Value::Null))
    }

    /// Search `collection` by an uploaded image with these form fields.
    pub fn search_image_with(&self, collection: &str, bytes: Vec<u8>, fields: &[(&str, &str)]) -> (StatusCode, Value) {
        let mut form = Form::new().part("image", Part::bytes(bytes).file_name("q.png"));
        for (k, v) in fields {
            form = form.text(k.to_string(), v.to_string());
        }
        let url = format!("{}/api/collections/{collection}/search/image", self.base);
        let res = self.client.post(url).multipart(form).send().unwrap();
        (res.status(), res.json().unwrap_or(Value::Null))
    }

    /// `DELETE /api/collections/{c}/records/{id}`.
    pub fn delete(&self, collection: &str, id: &str) -> (StatusCode, Value) {
        let res =
            self.client.delete(format!("{}/api/collections/{collection}/records/{id}", self.base)).send().unwrap();
        (res.status(), res.json().unwrap_or(Value::Null))
    }

    /// What the server wrote on stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.stderr.path()).unwrap_or_default()
    }

    /// Send SIGTERM and wait: (exit status, stderr).
    pub fn terminate(mut self) -> (ExitStatus, String) {
        let mut child = self.child.take().unwrap();
        let kill = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
        assert!(kill.success());
        let status = child.wait().unwrap();
        (status, self.stderr())
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().ok();
            c.wait().ok();
        }
    }
}
