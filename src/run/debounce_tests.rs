use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::*;
use crate::events::ChangedValue;

const WINDOW: Duration = Duration::from_secs(10);
const BACKOFF: Duration = Duration::from_secs(10);

fn receipt(id: &str) -> Receipt {
    Receipt { id: id.into(), handle: format!("handle-{id}") }
}

fn change(message: &str, event: &str, secret: &str, at: f64, readers: &[&str]) -> Received {
    Received {
        receipt: receipt(message),
        receive_count: 1,
        event: Event {
            id: Some(event.into()),
            time: Some(at),
            parsed: Parsed::Change(ValueChange {
                value: ChangedValue::Secret(secret.into()),
                at: Some(at),
                cause: "RotationSucceeded".into(),
                labels: BTreeSet::new(),
            }),
        },
        readers: readers.iter().map(|s| s.to_string()).collect(),
    }
}

fn other(message: &str, parsed: Parsed) -> Received {
    Received {
        receipt: receipt(message),
        receive_count: 1,
        event: Event { id: None, time: None, parsed },
        readers: BTreeSet::new(),
    }
}

fn redeploys(actions: &[Action]) -> Vec<(String, usize)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Redeploy(d) => Some(d.iter().map(|d| (d.service.clone(), d.changes.len())).collect::<Vec<_>>()),
            _ => None,
        })
        .flatten()
        .collect()
}

fn deleted(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Delete(r) => Some(r.iter().map(|r| r.id.clone()).collect::<Vec<_>>()),
            _ => None,
        })
        .flatten()
        .collect()
}

fn released(actions: &[Action]) -> Vec<(String, Duration)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Release { receipt, after } => Some((receipt.id.clone(), *after)),
            _ => None,
        })
        .collect()
}

fn counts(actions: &[Action]) -> Vec<&'static str> {
    actions.iter().filter_map(|a| if let Action::Count(c) = a { Some(*c) } else { None }).collect()
}

#[test]
fn five_changes_to_two_values_within_the_window_make_one_redeploy_per_service() {
    let t0 = Instant::now();
    let mut d = Debouncer::new(WINDOW, BACKOFF);
    let mut batch = Vec::new();
    for i in 0..5 {
        let secret = if i % 2 == 0 { "web/api" } else { "web/db" };
        batch.push(change(&format!("m{i}"), &format!("e{i}"), secret, 1000.0, &["web"]));
    }
    batch.push(change("m5", "e5", "worker/x", 1000.0, &["web", "worker"]));
    let a = d.on(Input::Received(batch), t0);
    assert_eq!(counts(&a), vec!["matched"; 6]);
    assert!(redeploys(&a).is_empty() && deleted(&a).is_empty(), "nothing before the window closes: {a:?}");
    assert_eq!(d.next_due(), Some(t0 + WINDOW));
    assert!(redeploys(&d.on(Input::Tick, t0 + WINDOW - Duration::from_millis(1))).is_empty());
    let a = d.on(Input::Tick, t0 + WINDOW);
    assert_eq!(redeploys(&a), vec![("web".into(), 6), ("worker".into(), 1)]);
    // A message is deleted only when every service it asked for is done.
    let a = d.on(Input::Done(vec![("web".into(), Outcome::Deployed)]), t0 + WINDOW);
    assert_eq!(deleted(&a), vec!["m0", "m1", "m2", "m3", "m4"]);
    let a = d.on(Input::Done(vec![("worker".into(), Outcome::Deployed)]), t0 + WINDOW);
    assert_eq!(deleted(&a), vec!["m5"]);
    assert_eq!(d.held(), 0);
}

#[test]
fn events_that_change_nothing_are_counted_and_deleted_at_once() {
    let t0 = Instant::now();
    let mut d = Debouncer::new(WINDOW, BACKOFF);
    let a = d.on(
        Input::Received(vec![
            other("bad", Parsed::Malformed("not JSON".into())),
            other("meh", Parsed::Ignored("label AWSPENDING moved".into())),
            change("nobody", "e1", "unread/secret", 1000.0, &[]),
        ]),
        t0,
    );
    assert_eq!(counts(&a), vec!["malformed", "ignored", "unmatched"]);
    assert_eq!(deleted(&a), vec!["bad", "meh", "nobody"]);
    assert_eq!(d.next_due(), None);
}

#[test]
fn a_second_delivery_of_a_handled_event_is_a_duplicate() {
    let t0 = Instant::now();
    let mut d = Debouncer::new(Duration::ZERO, BACKOFF);
    let a = d.on(Input::Received(vec![change("m1", "e1", "web/api", 1000.0, &["web"])]), t0);
    assert_eq!(redeploys(&a), vec![("web".into(), 1)], "a zero window redeploys at once");
    d.on(Input::Done(vec![("web".into(), Outcome::Deployed)]), t0);
    let a = d.on(Input::Received(vec![change("m1-again", "e1", "web/api", 1000.0, &["web"])]), t0);
    assert_eq!(counts(&a), vec!["duplicate"]);
    assert_eq!(deleted(&a), vec!["m1-again"]);
    assert!(redeploys(&a).is_empty());
}

#[test]
fn a_failed_redeploy_returns_its_message_with_a_delay_growing_with_its_receive_count() {
    let t0 = Instant::now();
    let mut d = Debouncer::new(Duration::ZERO, BACKOFF);
    let mut m = change("m1", "e1", "web/api", 1000.0, &["web", "worker"]);
    m.receive_count = 3;
    d.on(Input::Received(vec![m]), t0);
    // One of two services failed: the message is not deleted, and waits for the other.
    let a = d.on(Input::Done(vec![("web".into(), Outcome::Failed)]), t0);
    assert!(deleted(&a).is_empty() && released(&a).is_empty(), "{a:?}");
    let a = d.on(Input::Done(vec![("worker".into(), Outcome::Deployed)]), t0);
    assert!(deleted(&a).is_empty());
    assert_eq!(released(&a), vec![("m1".into(), BACKOFF * 3)]);
    // Redelivered later: the service that succeeded is not deployed again.
    let mut again = change("m1", "e1", "web/api", 1000.0, &["web", "worker"]);
    again.receive_count = 4;
    let a = d.on(Input::Received(vec![again]), t0);
    assert_eq!(redeploys(&a), vec![("web".into(), 1)]);
}

#[test]
fn a_service_that_could_not_be_read_is_tried_again_and_its_message_held_meanwhile() {
    let t0 = Instant::now();
    let mut d = Debouncer::new(Duration::ZERO, BACKOFF);
    d.on(Input::Received(vec![change("m1", "e1", "web/api", 1000.0, &["web"])]), t0);
    let retry = Duration::from_millis(700);
    let a = d.on(Input::Done(vec![("web".into(), Outcome::Unread { retry_in: retry })]), t0);
    assert!(deleted(&a).is_empty() && released(&a).is_empty());
    assert_eq!(d.next_due(), Some(t0 + retry));
    assert!(redeploys(&d.on(Input::Tick, t0)).is_empty());
    let a = d.on(Input::Tick, t0 + retry);
    assert_eq!(redeploys(&a), vec![("web".into(), 1)]);
    let a = d.on(Input::Done(vec![("web".into(), Outcome::Deployed)]), t0 + retry);
    assert_eq!(deleted(&a), vec!["m1"]);
}

#[test]
fn a_fresh_deployment_answers_the_backstop_only_up_to_its_start() {
    let t0 = Instant::now();
    let mut d = Debouncer::new(Duration::ZERO, BACKOFF);
    d.on(Input::Received(vec![change("m1", "e1", "web/api", 1000.0, &["web"])]), t0);
    let a = d.on(Input::Done(vec![("web".into(), Outcome::Fresh { start: 1000.4 })]), t0);
    assert_eq!(counts(&a), vec!["fresh"]);
    assert!(a.contains(&Action::Answered { service: "web".into(), through: 1000.4 }), "{a:?}");
    assert_eq!(deleted(&a), vec!["m1"]);
    d.on(Input::Received(vec![change("m2", "e2", "web/api", 2000.0, &["web"])]), t0);
    let a = d.on(Input::Done(vec![("web".into(), Outcome::Deployed)]), t0);
    assert!(a.contains(&Action::Answered { service: "web".into(), through: 2001.0 }), "{a:?}");
}

#[test]
fn shutdown_returns_every_held_message_at_once_and_deletes_none() {
    let t0 = Instant::now();
    let mut d = Debouncer::new(WINDOW, BACKOFF);
    d.on(
        Input::Received(vec![change("m1", "e1", "web/api", 1000.0, &["web"]), change("m2", "e2", "x", 1.0, &["w"])]),
        t0,
    );
    let a = d.on(Input::Shutdown, t0);
    assert_eq!(released(&a), vec![("m1".into(), Duration::ZERO), ("m2".into(), Duration::ZERO)]);
    assert!(deleted(&a).is_empty());
    assert_eq!((d.held(), d.next_due()), (0, None));
}

#[test]
fn unsupported_and_removed_services_end_the_message_without_a_redeploy() {
    let t0 = Instant::now();
    let mut d = Debouncer::new(Duration::ZERO, BACKOFF);
    d.on(Input::Received(vec![change("m1", "e1", "s", 1000.0, &["cd", "gone"])]), t0);
    let a = d.on(Input::Done(vec![("cd".into(), Outcome::Unsupported), ("gone".into(), Outcome::Gone)]), t0);
    assert_eq!(counts(&a), vec!["unsupported_service"]);
    assert_eq!(deleted(&a), vec!["m1"]);
}
