//! Phase display for long work: on a terminal, a spinner on the current phase that turns
//! into a tick and the phase's duration when the next one starts; otherwise one plain
//! `… phase` line per phase, so logs and scripts read them line by line.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

const FRAMES: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
const TICK: Duration = Duration::from_millis(80);

/// How phases are shown, on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Nothing (machine-readable output was asked for).
    Silent,
    /// One line per phase.
    Plain,
    /// A spinner redrawn in place.
    Spinner,
}

impl Style {
    /// Spinner on a terminal, plain lines otherwise, nothing when `quiet`.
    pub fn detect(quiet: bool) -> Self {
        if quiet {
            Self::Silent
        } else if std::io::stderr().is_terminal() {
            Self::Spinner
        } else {
            Self::Plain
        }
    }
}

#[derive(Debug, Default)]
struct Current {
    phase: Option<(String, Instant)>,
    frame: usize,
}

/// The phase display. Dropping it before [`Progress::finish`] marks the phase as failed.
#[derive(Debug)]
pub struct Progress {
    style: Style,
    current: Arc<Mutex<Current>>,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    /// A display in `style`; the spinner needs a tokio runtime.
    pub fn new(style: Style) -> Self {
        let current = Arc::new(Mutex::new(Current::default()));
        let ticker = (style == Style::Spinner).then(|| {
            let current = current.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(TICK).await;
                    let mut c = current.lock().unwrap_or_else(PoisonError::into_inner);
                    c.frame = (c.frame + 1) % FRAMES.len();
                    redraw(&c);
                }
            })
        });
        Self {
            style,
            current,
            ticker,
        }
    }

    /// Ends the current phase and starts `name`.
    pub fn phase(&self, name: &str) {
        match self.style {
            Style::Silent => {}
            Style::Plain => eprintln!("… {name}"),
            Style::Spinner => {
                let mut c = self.current.lock().unwrap_or_else(PoisonError::into_inner);
                settle(&mut c, '✓');
                c.phase = Some((name.to_owned(), Instant::now()));
                redraw(&c);
            }
        }
    }

    /// Ends the current phase line as done.
    pub fn finish(&self) {
        self.end('✓');
    }

    fn end(&self, mark: char) {
        if self.style == Style::Spinner {
            settle(
                &mut self.current.lock().unwrap_or_else(PoisonError::into_inner),
                mark,
            );
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(ticker) = self.ticker.take() {
            ticker.abort();
        }
        // A phase still running when the display goes away did not finish.
        self.end('✗');
    }
}

fn redraw(c: &Current) {
    if let Some((name, since)) = &c.phase {
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[2K{} {name}  {:.1} s",
            FRAMES[c.frame],
            since.elapsed().as_secs_f64()
        );
        let _ = err.flush();
    }
}

/// Replaces the spinner line of the current phase with `mark` and its duration.
fn settle(c: &mut Current, mark: char) {
    if let Some((name, since)) = c.phase.take() {
        eprintln!("\r\x1b[2K{mark} {name}  {} ms", since.elapsed().as_millis());
    }
}
