//! What the application under test did, as its stand-ins saw it: the items its handler
//! took, the Web API calls the fake Slack received (answers to commands and clicks among
//! them), the HelpDesk requests, and its metrics.

use std::time::Duration;

use helpdesk_bridge::inbound::Inbound;
use serde_json::Value;

use super::{
    app::TestApp,
    eventually,
    fakes::{self, assert_valid_message, text_of},
};

impl TestApp {
    /// Waits until the handler has taken `n` items, and returns them.
    pub async fn taken(&self, n: usize) -> Vec<Inbound> {
        let items = eventually(Duration::from_secs(10), || async {
            let items = self.recorder.taken();
            (items.len() >= n).then_some(items)
        })
        .await;
        items.unwrap_or_else(|| panic!("expected {n} handled items, got {:?}", self.recorder.taken()))
    }

    /// JSON bodies (or query parameters, for GETs) of the fake Slack's calls of `method`.
    pub async fn slack_calls(&self, method: &str) -> Vec<Value> {
        fakes::calls(&self.slack, &format!("/{method}")).await
    }

    /// Waits until the fake Slack saw `n` calls of `method` matching `pred`; returns them.
    pub async fn wait_slack(&self, method: &str, n: usize, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        let found = eventually(Duration::from_secs(15), || async {
            let calls: Vec<_> = self.slack_calls(method).await.into_iter().filter(|c| pred(c)).collect();
            (calls.len() >= n).then_some(calls)
        })
        .await;
        match found {
            Some(calls) => calls,
            None => panic!("expected {n} matching {method} calls; saw {:#?}", self.slack_calls(method).await),
        }
    }

    /// JSON bodies the fake HelpDesk received on paths ending with `suffix`.
    pub async fn helpdesk_calls(&self, method: &str, suffix: &str) -> Vec<Value> {
        fakes::helpdesk_calls(&self.helpdesk, method, suffix).await
    }

    /// Waits until the fake HelpDesk received `n` messages for `ticket`; returns them all.
    pub async fn sends(&self, ticket: &str, n: usize) -> Vec<Value> {
        let suffix = format!("/{ticket}/sendMessage");
        let found = eventually(Duration::from_secs(15), || async {
            let calls = self.helpdesk_calls("POST", &suffix).await;
            (calls.len() >= n).then_some(calls)
        })
        .await;
        found.unwrap_or_else(|| panic!("expected {n} sends to {ticket}"))
    }

    /// The newest answer (at its `response_url`) to the command or click with `trigger`,
    /// waiting for one.
    pub async fn answer_body(&self, trigger: &str) -> Value {
        let found = eventually(Duration::from_secs(10), || async {
            self.slack_calls(&format!("respond/{trigger}")).await.pop()
        })
        .await;
        found.unwrap_or_else(|| panic!("no answer to {trigger}"))
    }

    /// The text of [`TestApp::answer_body`].
    pub async fn answer(&self, trigger: &str) -> String {
        text_of(&self.answer_body(trigger).await)
    }

    /// Like [`TestApp::answer`], checking first that the answer is a message Slack takes.
    pub async fn valid_answer(&self, trigger: &str) -> String {
        let body = self.answer_body(trigger).await;
        assert_valid_message(&body);
        text_of(&body)
    }

    /// The text of the first answer to the command or click with `trigger`, waiting for one.
    pub async fn first_answer(&self, trigger: &str) -> String {
        let calls = self.wait_slack(&format!("respond/{trigger}"), 1, |_| true).await;
        text_of(&calls[0])
    }

    /// What `/metrics` on the public listener shows now.
    pub async fn metrics(&self) -> String {
        self.http.get(self.url("/metrics")).send().await.unwrap().text().await.unwrap()
    }
}
