//! Runs the real binary on a pseudo-terminal (libc's `openpty`), for the behaviour that only
//! shows on a terminal: hints, tables, colour. Every run has a hard deadline and kills the child,
//! so a program waiting on its terminal can never hang the suite.

use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What the terminal showed (stdout and stderr share it, as on a real one).
pub struct PtyRun {
    pub text: String,
    /// `None` when the child was killed at the deadline or when `until` matched first.
    pub status: Option<std::process::ExitStatus>,
}

/// Runs `cmd` with stdin, stdout and stderr on one pty of `cols` columns. Returns when the child
/// exits, when the output contains `until` (then the child is killed), or at `deadline`.
pub fn run(mut cmd: Command, cols: u16, until: Option<&str>, deadline: Duration) -> PtyRun {
    let (master, slave) = open(cols);
    let io = |fd: &OwnedFd| Stdio::from(fd.try_clone().expect("dup pty"));
    cmd.stdin(io(&slave)).stdout(io(&slave)).stderr(io(&slave));
    let mut child = cmd.spawn().expect("spawn on pty");
    drop(slave); // the child holds the only copies: the master reads EIO once it is gone

    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let mut reader = std::fs::File::from(master);
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });

    let start = Instant::now();
    let mut out = Vec::new();
    let mut status = None;
    loop {
        if let Ok(chunk) = rx.recv_timeout(Duration::from_millis(50)) {
            out.extend_from_slice(&chunk);
        }
        let text = String::from_utf8_lossy(&out);
        if until.is_some_and(|u| text.contains(u)) {
            break;
        }
        if let Ok(Some(s)) = child.try_wait() {
            status = Some(s);
            // Whatever the child wrote before exiting is still in the pty: drain it.
            while let Ok(chunk) = rx.recv_timeout(Duration::from_millis(200)) {
                out.extend_from_slice(&chunk);
            }
            break;
        }
        if start.elapsed() > deadline {
            break;
        }
    }
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    PtyRun {
        text: String::from_utf8_lossy(&out).replace("\r\n", "\n"),
        status,
    }
}

fn open(cols: u16) -> (OwnedFd, OwnedFd) {
    let (mut master, mut slave) = (-1, -1);
    let size = libc::winsize {
        ws_row: 40,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: openpty writes two fresh descriptors into the out-pointers; the null name and
    // termios pointers mean "do not report the name" and "default settings".
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just opened by openpty and are owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) }
}
