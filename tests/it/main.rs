//! Integration tests: the real binary against a real moto server (one per
//! test, so they run in parallel). One test binary, because each extra one
//! relinks the whole AWS SDK.

mod apply;
mod awsshape;
mod corpus;
mod crash;
mod faultproxy;
mod faults;
mod guardrails;
mod harness;
mod init;
mod lease;
mod lifecycle;
mod operate;
mod policylint;
mod prune;
mod rollouts;
mod run;
mod targets;
