//! How errors are written: each error's own message, then its causes.
//! Causes join the line they explain with ": "; a context layer (which
//! component failed) ends its line, and what went wrong inside it follows
//! on a "caused by" line.

use std::error::Error;

/// `e` and all its causes on one line.
pub fn one_line(e: &(dyn Error + 'static)) -> String {
    lines(e).join(": ")
}

/// `e` and its causes, one line per context layer.
pub fn lines(e: &(dyn Error + 'static)) -> Vec<String> {
    let mut lines = vec![e.to_string()];
    let mut breaks = is_context(e);
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        match lines.last_mut() {
            Some(last) if !breaks => {
                last.push_str(": ");
                last.push_str(&text);
            }
            _ => lines.push(text),
        }
        breaks = is_context(s);
        cur = s.source();
    }
    lines
}

fn is_context(e: &(dyn Error + 'static)) -> bool {
    matches!(
        e.downcast_ref::<redist::Error>(),
        Some(redist::Error::Component { .. })
    )
}
