//! Operating a running controller: `secretwire status` (its /status as a
//! table) and `secretwire healthcheck` (the image's container health check).

use crate::harness::*;

#[tokio::test]
async fn status_shows_the_running_controllers_objects_and_healthcheck_follows_healthz() {
    let moto = Moto::start();
    moto.bootstrap();
    let repo = example_repo();
    let run = moto.start_run(repo.path(), &["--debounce", "0s"]);
    run.wait_ready();
    let url = format!("http://{}", run.addr);

    let table = moto.secretwire(&["status", "--url", &url], &[]);
    table.assert_code(0);
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert!(
        lines[0].starts_with("OBJECT") && lines[0].contains("LAST REDEPLOY") && lines[0].ends_with("AGE"),
        "{}",
        table.stdout
    );
    let web = lines.iter().find(|l| l.starts_with("Service/web ")).unwrap_or_else(|| panic!("{}", table.stdout));
    let cols: Vec<&str> = web.split_whitespace().collect();
    let live = run.status();
    let want_rev = live["objects"]["Service/web"]["lastAppliedRevision"].as_str().unwrap_or("-").to_string();
    assert_eq!(&cols[1..4], ["True", "True", want_rev.as_str()], "{web}");
    assert_eq!(lines.len(), 1 + live["objects"].as_object().unwrap().len(), "one row per object");
    assert!(table.stderr.contains("controller: leader, ready"), "{}", table.stderr);
    let wide = moto.secretwire(&["status", "--url", &url, "-o", "wide"], &[]);
    assert!(wide.assert_code(0).stdout.lines().next().unwrap().contains("REASON"), "{}", wide.stdout);
    let json = moto.secretwire(&["status", "--url", &url, "-o", "json"], &[]);
    assert_eq!(json.assert_code(0).json()["objects"]["Service/web"]["kind"], "Service");
    for out in [&table.stdout, &wide.stdout, &json.stdout] {
        assert!(!out.contains("registry-pass-7Zq9w"), "a value in status output: {out}");
    }

    moto.secretwire(&["healthcheck", "--url", &url], &[]).assert_code(0);
    let (code, _) = run.stop();
    assert_eq!(code, 0);
    let dead = moto.secretwire(&["healthcheck", "--url", &url, "--timeout", "2s"], &[]);
    dead.assert_code(1);
    assert!(dead.stderr.contains("unhealthy"), "{}", dead.stderr);
    let status_dead = moto.secretwire(&["status", "--url", &url], &[]);
    status_dead.assert_code(1);
}
