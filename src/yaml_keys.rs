//! Scanning one line of YAML source text for the key and value that a parser error points
//! at, for the messages of the config and the web config that quote them. Flow collections
//! (`[ ]`, `{ }`) and quoted scalars are followed, so a value inside `{ a: ok }` reads `ok`,
//! not `ok }`.

/// Counts the flow collections (`[` or `{`) that are open at the end of `before`, skipping
/// brackets inside quoted scalars.
pub(crate) fn flow_depth(before: &str) -> usize {
    let mut depth = 0usize;
    let mut quote = None;
    let mut previous = ' ';
    for c in before.chars() {
        match (quote, c) {
            (Some(open), c) if c == open => quote = None,
            (None, '"' | '\'') if opens_quote(previous) => quote = Some(c),
            (None, '[' | '{') => depth += 1,
            (None, ']' | '}') => depth = depth.saturating_sub(1),
            _ => {}
        }
        previous = c;
    }
    depth
}

/// Reports whether a quote after `previous` starts a quoted scalar rather than sitting inside a
/// plain one, as in `it's`.
fn opens_quote(previous: char) -> bool {
    previous.is_whitespace() || matches!(previous, '[' | '{' | ',' | ':')
}

/// Returns the value at the start of `rest`, which lies inside a flow collection. A bracketed
/// collection ends at its matching close and a quoted scalar at its closing quote. A plain
/// scalar ends before the next `,`, `]` or `}`.
pub(crate) fn flow_value(rest: &str) -> &str {
    let mut depth = 0usize;
    let mut quote = None;
    let mut previous = ' ';
    for (i, c) in rest.char_indices() {
        let before = previous;
        previous = c;
        match (quote, c) {
            (Some(open), c) if c == open => {
                quote = None;
                if depth == 0 {
                    return &rest[..=i];
                }
            }
            (None, '"' | '\'') if opens_quote(before) => quote = Some(c),
            (None, '[' | '{') => depth += 1,
            (None, ']' | '}') if depth > 1 => depth -= 1,
            (None, ']' | '}') if depth == 1 => return &rest[..=i],
            (None, ',' | ']' | '}') if depth == 0 => return rest[..i].trim_end(),
            _ => {}
        }
    }
    rest.trim_end()
}

/// Returns the last `key:` in `before`, skipping the brackets and commas that open a value.
/// The whole key is returned, including any spaces in it, because a plain or quoted YAML key
/// may contain spaces, and a word of such a key may be a secret written where its value belongs.
pub(crate) fn key_before(before: &str) -> Option<String> {
    let trimmed =
        before.trim_end_matches(|c: char| c.is_whitespace() || matches!(c, '[' | '{' | ','));
    let without_colon = trimmed.strip_suffix(':')?.trim_end();
    let key = match last_quoted(without_colon) {
        Some(quoted) => quoted,
        None => plain_key(without_colon),
    };
    (!key.is_empty()).then(|| key.to_owned())
}

/// Returns the contents of the quoted scalar that ends `text`, if `text` ends with one.
/// Escaped quotes (`\"` in double quotes, `''` in single quotes) do not end the scalar.
fn last_quoted(text: &str) -> Option<&str> {
    let mut quote = None;
    let mut opened_at = 0;
    let mut last = None;
    let mut previous = ' ';
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match (quote, c) {
            (Some('"'), '\\') => {
                // The escaped character cannot close the scalar.
                chars.next();
            }
            (Some('\''), '\'') if chars.peek().is_some_and(|&(_, next)| next == '\'') => {
                chars.next();
            }
            (Some(open), c) if c == open => {
                quote = None;
                last = Some((opened_at, i));
            }
            (None, '"' | '\'') if opens_quote(previous) => {
                quote = Some(c);
                opened_at = i;
            }
            _ => {}
        }
        previous = c;
    }
    match last {
        Some((open, close)) if quote.is_none() && close + 1 == text.len() => {
            Some(&text[open + 1..close])
        }
        _ => None,
    }
}

/// Returns the plain scalar key at the end of `text`: what follows the last flow indicator
/// (`{`, `[`, or `,` inside a flow collection), without the indentation and the `- ` of a
/// list item or `? ` of an explicit key before it. In block context a plain key may contain
/// commas and brackets, which then belong to the key.
fn plain_key(text: &str) -> &str {
    let mut depth = 0usize;
    let mut start = 0;
    let mut quote = None;
    let mut previous = ' ';
    for (i, c) in text.char_indices() {
        match (quote, c) {
            (Some(open), c) if c == open => quote = None,
            (None, '"' | '\'') if opens_quote(previous) => quote = Some(c),
            (None, '[' | '{') if opens_quote(previous) => {
                depth += 1;
                start = i + 1;
            }
            (None, ']' | '}') if depth > 0 => depth -= 1,
            (None, ',') if depth > 0 => start = i + 1,
            _ => {}
        }
        previous = c;
    }
    let mut key = text[start..].trim();
    while let Some(rest) = key.strip_prefix("- ").or_else(|| key.strip_prefix("? ")) {
        key = rest.trim_start();
    }
    key
}

#[cfg(test)]
mod tests;
