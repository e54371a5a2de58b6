//! Scanning one line of YAML source text for the key and value that a parser error points
//! at, for messages that quote them. Flow collections (`[ ]`, `{ }`) and quoted scalars are
//! followed, so a value inside `{ a: ok }` reads `ok`, not `ok }`.

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
pub(crate) fn key_before(before: &str) -> Option<String> {
    let trimmed =
        before.trim_end_matches(|c: char| c.is_whitespace() || matches!(c, '[' | '{' | ','));
    let without_colon = trimmed.strip_suffix(':')?;
    let start = without_colon
        .rfind(|c: char| c.is_whitespace() || matches!(c, '{' | '[' | ','))
        .map_or(0, |i| i + 1);
    let key = without_colon[start..].trim_matches(|c| c == '"' || c == '\'');
    (!key.is_empty()).then(|| key.to_owned())
}
