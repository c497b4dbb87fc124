//! Hostile input: values, files and strings chosen to break the program must end in exit 2 with
//! a message naming the culprit (or a sane report), never a panic, a hang or unbounded memory.

mod support;

use support::*;

#[test]
fn numbers_out_of_range_exit_2_from_every_source() {
    let huge = "18446744073709551615s";
    assert_usage_error(&["check", "--timeout", huge], &["--timeout"]);
    assert_usage_error(
        &["check", "--timeout", "11m"],
        &["--timeout", "out of range"],
    );
    assert_usage_error(
        &["probe", "tcp", "127.0.0.1:1", "--timeout", huge],
        &["--timeout"],
    );
    assert_usage_error(&["serve", "--interval", huge], &["--interval"]);
    assert_usage_error(
        &["serve", "--interval", "100ms"],
        &["--interval", "from 1s"],
    );
    assert_usage_error(
        &["check", "--concurrency", "4097"],
        &["--concurrency", "4096"],
    );
    assert_usage_error(
        &["check", "--concurrency", "3000000000000000000"],
        &["--concurrency"],
    );

    let dir = temp_dir("ranges");
    let cases = [
        ("concurrency = 3000000000000000000\n", "field `concurrency`"),
        ("concurrency = 0\n", "field `concurrency`"),
        (
            "\ntimeout = \"18446744073709551615s\"\n",
            "c.toml:2: field `timeout`",
        ),
        (
            "[serve]\ninterval = \"584942417355years\"\n",
            "c.toml:2: field `serve.interval`",
        ),
    ];
    for (text, needle) in cases {
        let cfg = write(&dir, "c.toml", text);
        let cfg = cfg.to_str().unwrap();
        let cmd = if text.contains("[serve]") {
            "serve"
        } else {
            "check"
        };
        assert_usage_error(&[cmd, "--config", cfg, "--only", "none"], &[needle]);
    }
    std::fs::remove_dir_all(dir).unwrap();
}
