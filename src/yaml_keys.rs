//! Finds the YAML key at a line and column that serde-saphyr reports, and the value written
//! there, by scanning the source lines. The config and the web config both name this key in
//! their messages, and quote the value where it cannot be a secret.
//!
//! Flow collections (`[ ]`, `{ }`) and quoted scalars are followed, so a value inside
//! `{ a: ok }` reads `ok`, not `ok }`, and a `:` or ` #` inside quotes starts no key or
//! comment. Columns count characters from 1, as serde-saphyr counts them.

/// A key found in the source, with the keys that contain it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct FoundKey {
    /// The keys that contain this one, outermost first: the block keys above it by
    /// indentation, then the keys of the flow mappings around it on its line.
    pub(crate) parents: Vec<String>,
    pub(crate) key: String,
    /// The value written at the position, without a trailing comment, cut at the end of its
    /// flow collection item. It is `None` where the value is missing, and where a key or a
    /// block list starts, which has no one-line value. For a position past the last value, as
    /// at the end of the file, it is the value written after the key.
    pub(crate) value: Option<String>,
}

impl FoundKey {
    /// Returns the key that contains this one, if any.
    pub(crate) fn parent(&self) -> Option<&str> {
        self.parents.last().map(String::as_str)
    }

    /// Returns the dotted path, such as `http_server_config.http2`.
    pub(crate) fn path(&self) -> String {
        let mut path = self.parents.join(".");
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(&self.key);
        path
    }
}

/// Finds the key whose value serde-saphyr reported at the 1-based `line` and `column`.
///
/// The key is the innermost one on that line whose value contains the column, or whose colon
/// is at the column, because serde-saphyr places a missing value at the colon before it. On a
/// line with no such key, such as a block list item, it is the innermost key above the line
/// by indentation. Past the last value of the file, as for an error at its end, it is the last
/// key whose value is missing or opens a bracket that its line does not close.
///
/// NOTE: each line is scanned on its own, so a quote opened on an earlier line is not followed,
/// and neither is a bracket, except one opened on the line of a key that contains the position.
pub(crate) fn key_at(text: &str, line: u64, column: u64) -> Option<FoundKey> {
    let lines: Vec<&str> = text.lines().collect();
    let index = usize::try_from(line).ok()?.checked_sub(1)?;
    let Some(content) = lines
        .get(index)
        .map(|source| strip_comment(source).trim_end())
        .filter(|content| !content.trim_start().is_empty())
    else {
        return key_at_end(&lines, index);
    };
    let at = byte_offset(content, column);
    let entries = entries(content);
    let chain: Vec<&Entry> = entries.iter().filter(|e| e.contains(at)).collect();
    let mut parents = parents_of(&lines, index);
    let outer = parents.last().and_then(Entry::open_flow);

    let value = match chain.last() {
        Some(entry) if entry.colon == at => None,
        _ => value_at(content, at, &entries, outer),
    };
    let key = match chain.split_last() {
        Some((found, around)) => {
            parents.extend(around.iter().map(|&entry| entry.clone()));
            found.key.clone()
        }
        None => parents.pop()?.key,
    };
    Some(FoundKey {
        parents: parents.into_iter().map(|entry| entry.key).collect(),
        key,
        value: value.map(str::to_owned),
    })
}

/// Finds the key for a position past the last value: the last key before line `index` whose
/// value is missing or opens a bracket that its line does not close.
fn key_at_end(lines: &[&str], index: usize) -> Option<FoundKey> {
    let end = index.min(lines.len());
    (0..end).rev().find_map(|i| {
        let mut chain = open_chain(strip_comment(lines[i]))?;
        let found = chain.pop()?;
        let parents = parents_of(lines, i).into_iter().chain(chain);
        Some(FoundKey {
            parents: parents.map(|entry| entry.key).collect(),
            key: found.key,
            value: found.value.map(str::to_owned),
        })
    })
}

/// Returns the keys that contain the line `index`, outermost first. Each is the last key on
/// an earlier line with less indentation, whose value is missing or opens a bracket that the
/// line does not close. The `- ` of a list item counts as indentation, so the keys of one
/// list item share the parents of the list.
fn parents_of<'a>(lines: &[&'a str], index: usize) -> Vec<Entry<'a>> {
    let mut indent = indentation(lines[index]);
    let mut groups = Vec::new();
    for source in lines[..index].iter().rev() {
        if indent == 0 {
            break;
        }
        let content = strip_comment(source);
        if content.trim().is_empty() || indentation(content) >= indent {
            continue;
        }
        indent = indentation(content);
        let Some(chain) = open_chain(content) else {
            break;
        };
        groups.push(chain);
    }
    groups.reverse();
    groups.concat()
}

fn indentation(source: &str) -> usize {
    source.len() - source.trim_start_matches([' ', '-']).len()
}

/// Returns the keys whose values reach the end of `content`, outermost first, when the last
/// of them has no value or opens a bracket that `content` does not close.
fn open_chain(content: &str) -> Option<Vec<Entry<'_>>> {
    let content = content.trim_end();
    let chain: Vec<Entry> = entries(content)
        .into_iter()
        .filter(|e| e.contains(content.len()))
        .collect();
    let last = chain.last()?;
    let open = last.value.is_none() || last.open_flow().is_some();
    open.then_some(chain)
}

/// Returns the byte offset in `line` of the 1-based character `column`, or the end of the line
/// for a column past it.
fn byte_offset(line: &str, column: u64) -> usize {
    let Some(skip) = usize::try_from(column).ok().and_then(|c| c.checked_sub(1)) else {
        return 0;
    };
    line.char_indices().nth(skip).map_or(line.len(), |(i, _)| i)
}

/// Returns the value written at byte `at` of `content`, cut at the end of its flow collection
/// item. `outer` is the innermost bracket that earlier lines leave open around `content`.
/// A key is not a value, so nothing is returned where a key starts: a block list item (`- `),
/// a block mapping, or a key inside a flow mapping, such as `b` in `{ a: 1, b }`.
fn value_at<'a>(
    content: &'a str,
    at: usize,
    entries: &[Entry],
    outer: Option<char>,
) -> Option<&'a str> {
    let (before, after) = content.split_at(at);
    let innermost = open_flows(before).last().copied().or(outer);
    let value = match innermost {
        Some(_) => flow_value(after.trim()),
        None => after.trim(),
    };
    let starts_key = match innermost {
        Some('{') => !before.trim_end().ends_with(':'),
        Some(_) => false,
        None => {
            value == "-"
                || value.starts_with("- ")
                || entries.iter().any(|e| e.depth == 0 && e.colon >= at)
        }
    };
    (!value.is_empty() && !starts_key).then_some(value)
}

/// A `key:` on one line, with the value written after it.
#[derive(Clone, Debug)]
struct Entry<'a> {
    key: String,
    /// The byte offset of the colon after the key.
    colon: usize,
    /// The number of flow collections open at the colon.
    depth: usize,
    /// The value after the colon, cut at the end of its flow collection item.
    value: Option<&'a str>,
    /// The byte offset just past the value, or past the colon and the blanks after it.
    end: usize,
}

impl Entry<'_> {
    /// Reports whether byte `at` lies in this entry's value, or at its colon.
    fn contains(&self, at: usize) -> bool {
        self.colon == at || (self.colon < at && at <= self.end)
    }

    /// Returns the innermost bracket that the value opens and does not close.
    fn open_flow(&self) -> Option<char> {
        open_flows(self.value?).last().copied()
    }
}

/// Returns every `key:` on `content`, a line without its comment, in order.
fn entries(content: &str) -> Vec<Entry<'_>> {
    let mut found = Vec::new();
    let mut depth = 0usize;
    for (i, c, place) in scan(content) {
        if place != Place::Outside {
            continue;
        }
        match c {
            '[' | '{' => depth += 1,
            ']' | '}' => depth = depth.saturating_sub(1),
            ':' => {
                let rest = &content[i + 1..];
                let ends_key = rest.is_empty()
                    || rest.starts_with([' ', '\t'])
                    || (depth > 0 && rest.starts_with([',', ']', '}']));
                if !ends_key {
                    continue;
                }
                let Some(key) = key_before(&content[..=i]) else {
                    continue;
                };
                let written = rest.trim_start();
                let start = content.len() - written.len();
                let written = if depth > 0 {
                    flow_value(written)
                } else {
                    written.trim_end()
                };
                found.push(Entry {
                    key,
                    colon: i,
                    depth,
                    value: (!written.is_empty()).then_some(written),
                    end: start + written.len(),
                });
            }
            _ => {}
        }
    }
    found
}

/// Removes a comment: a `#` outside quotes at the start of the line or after a blank.
fn strip_comment(source: &str) -> &str {
    let mut previous = ' ';
    for (i, c, place) in scan(source) {
        if place == Place::Outside && c == '#' && previous.is_whitespace() {
            return &source[..i];
        }
        previous = c;
    }
    source
}

/// Returns the brackets (`[` or `{`) of the flow collections that are open at the end of
/// `before`, outermost first, skipping brackets inside quoted scalars.
fn open_flows(before: &str) -> Vec<char> {
    let mut open = Vec::new();
    for (_, c, place) in scan(before) {
        match (place, c) {
            (Place::Outside, '[' | '{') => open.push(c),
            (Place::Outside, ']' | '}') => {
                open.pop();
            }
            _ => {}
        }
    }
    open
}

/// Returns the value at the start of `rest`, which lies inside a flow collection. A bracketed
/// collection ends at its matching close and a quoted scalar at its closing quote. A plain
/// scalar ends before the next `,`, `]` or `}`.
fn flow_value(rest: &str) -> &str {
    let mut depth = 0usize;
    for (i, c, place) in scan(rest) {
        match (place, c) {
            (Place::Close, _) if depth == 0 => return &rest[..=i],
            (Place::Outside, '[' | '{') => depth += 1,
            (Place::Outside, ']' | '}') if depth > 1 => depth -= 1,
            (Place::Outside, ']' | '}') if depth == 1 => return &rest[..=i],
            (Place::Outside, ',' | ']' | '}') if depth == 0 => return rest[..i].trim_end(),
            _ => {}
        }
    }
    rest.trim_end()
}

/// Returns the last `key:` in `before`, skipping the brackets and commas that open a value.
/// The whole key is returned, including any spaces in it, because a plain or quoted YAML key
/// may contain spaces, and a word of such a key may be a secret written where its value belongs.
fn key_before(before: &str) -> Option<String> {
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
    let mut opened_at = None;
    let mut last = None;
    for (i, _, place) in scan(text) {
        match place {
            Place::Open => opened_at = Some(i),
            Place::Close => last = opened_at.take().map(|open| (open, i)),
            Place::Outside | Place::Inside => {}
        }
    }
    match last {
        Some((open, close)) if opened_at.is_none() && close + 1 == text.len() => {
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
    let mut previous = ' ';
    for (i, c, place) in scan(text) {
        match (place, c) {
            (Place::Outside, '[' | '{') if opens_scalar(previous) => {
                depth += 1;
                start = i + 1;
            }
            (Place::Outside, ']' | '}') if depth > 0 => depth -= 1,
            (Place::Outside, ',') if depth > 0 => start = i + 1,
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

/// The place of a character of a line relative to quoted scalars.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    Outside,
    /// The quote that opens a quoted scalar.
    Open,
    /// Inside a quoted scalar, escapes included.
    Inside,
    /// The quote that closes a quoted scalar.
    Close,
}

/// Iterates over the characters of one line with their byte offsets and [`Place`]s. A quote
/// opens a scalar only where a scalar can start, so the quote in `it's` opens none. An escaped
/// quote (`\"` in double quotes, `''` in single quotes) does not close the scalar.
fn scan(line: &str) -> impl Iterator<Item = (usize, char, Place)> + '_ {
    let mut chars = line.char_indices().peekable();
    let mut open = None;
    let mut previous = ' ';
    let mut escaped = false;
    std::iter::from_fn(move || {
        let (i, c) = chars.next()?;
        let next = chars.peek().map(|&(_, next)| next);
        let place = match open {
            Some(_) if escaped => {
                escaped = false;
                Place::Inside
            }
            Some('"') if c == '\\' => {
                escaped = true;
                Place::Inside
            }
            Some('\'') if c == '\'' && next == Some('\'') => {
                escaped = true;
                Place::Inside
            }
            Some(quote) if c == quote => {
                open = None;
                Place::Close
            }
            Some(_) => Place::Inside,
            None if matches!(c, '"' | '\'') && opens_scalar(previous) => {
                open = Some(c);
                Place::Open
            }
            None => Place::Outside,
        };
        previous = c;
        Some((i, c, place))
    })
}

/// Reports whether a scalar can start after `previous`, rather than `previous` being inside a
/// plain scalar, as the `t` before the quote in `it's`.
fn opens_scalar(previous: char) -> bool {
    previous.is_whitespace() || matches!(previous, '[' | '{' | ',' | ':')
}

#[cfg(test)]
mod tests;
