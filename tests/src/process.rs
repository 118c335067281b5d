//! Running child processes: captured output of short commands, and long-running
//! children whose output goes to log files that the harness reads.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

/// What a finished command printed, and how it exited.
#[derive(Debug)]
pub struct Output {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Output {
    /// Runs `command` to the end, feeding it `stdin`.
    pub fn of(mut command: Command, stdin: Option<&str>) -> Self {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
        // Taking stdin closes it once written, so the command sees end of input.
        if let Some(mut pipe) = child.stdin.take()
            && let Some(input) = stdin
        {
            pipe.write_all(input.as_bytes()).expect("stdin written");
        }
        Self::wait(child)
    }

    /// Waits for a spawned child with piped output.
    pub fn wait(child: Child) -> Self {
        let out = child.wait_with_output().expect("the command ends");
        Self {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Asserts exit code 0 and returns self.
    #[track_caller]
    pub fn success(self) -> Self {
        assert_eq!(
            self.code, 0,
            "the command failed:\n{}{}",
            self.stdout, self.stderr
        );
        self
    }

    /// Asserts success and parses stdout as one JSON value.
    #[track_caller]
    pub fn json(self) -> Value {
        let out = self.success();
        serde_json::from_str(out.stdout.trim())
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", out.stdout))
    }
}

/// Starts a long-running child with stdout and stderr appended to log files.
pub fn spawn_logged(mut command: Command, stdout: &Path, stderr: &Path) -> Child {
    let open = |path: &Path| {
        File::options()
            .create(true)
            .append(true)
            .open(path)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()))
    };
    command
        .stdin(Stdio::null())
        .stdout(open(stdout))
        .stderr(open(stderr))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"))
}

/// Sends SIGTERM and waits up to 10 s for the child to exit; SIGKILL after that.
/// Returns the exit code (None when it had to be killed or died by a signal).
pub fn terminate(child: &mut Child) -> Option<i32> {
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .is_ok_and(|s| s.success());
    if sent {
        for _ in 0..200 {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}
