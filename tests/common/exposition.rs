//! A strict reader of the Prometheus text exposition format (0.0.4), written from the
//! format's description and nothing of the server's: what `/metrics` sends must read back.

use std::collections::BTreeMap;

#[derive(Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.as_str())
    }
}

#[derive(Debug, Default)]
pub struct Exposition {
    /// Family name to its help text, unescaped.
    pub help: BTreeMap<String, String>,
    /// Family name to its type: counter, gauge, histogram, summary or untyped.
    pub types: BTreeMap<String, String>,
    pub samples: Vec<Sample>,
}

/// Reads the whole text or names the first line that breaks the format and why.
pub fn parse(text: &str) -> Result<Exposition, String> {
    let mut exposition = Exposition::default();
    for (number, line) in text.lines().enumerate() {
        read_line(&mut exposition, line)
            .map_err(|reason| format!("line {}: {reason}: {line:?}", number + 1))?;
    }
    Ok(exposition)
}

fn read_line(exposition: &mut Exposition, line: &str) -> Result<(), String> {
    if let Some(rest) = line.strip_prefix("# HELP ") {
        let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
        check_name(name)?;
        let help = unescape(help, false)?;
        if exposition.help.insert(name.to_string(), help).is_some() {
            return Err("a second HELP for one family".into());
        }
    } else if let Some(rest) = line.strip_prefix("# TYPE ") {
        let (name, kind) = rest.split_once(' ').ok_or("TYPE without a type")?;
        check_name(name)?;
        if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
            return Err(format!("unknown type {kind}"));
        }
        if exposition.samples.iter().any(|sample| sample.name == name) {
            return Err("TYPE after the family's samples".into());
        }
        if exposition
            .types
            .insert(name.to_string(), kind.into())
            .is_some()
        {
            return Err("a second TYPE for one family".into());
        }
    } else if !line.starts_with('#') && !line.trim().is_empty() {
        exposition.samples.push(read_sample(line)?);
    }
    Ok(())
}

fn check_name(name: &str) -> Result<(), String> {
    let mut characters = name.chars();
    let first_ok = characters
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_' || first == ':');
    match first_ok && characters.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
        true => Ok(()),
        false => Err(format!("{name:?} is not a metric or label name")),
    }
}

/// `name{key="value",...} value [timestamp]`
fn read_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("a sample without a value")?;
    let name = &line[..name_end];
    check_name(name)?;
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(inside) = rest.strip_prefix('{') {
        rest = inside;
        loop {
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let (key, after_key) = rest.split_once("=\"").ok_or("a label without =\"")?;
            check_name(key)?;
            let (value, after_value) = label_value(after_key)?;
            labels.push((key.to_string(), value));
            rest = match after_value.strip_prefix(',') {
                Some(next) => next,
                None if after_value.starts_with('}') => after_value,
                None => return Err("a label followed by neither , nor }".into()),
            };
        }
    }
    let mut fields = rest
        .strip_prefix(' ')
        .ok_or("no space before the value")?
        .split(' ');
    let value = fields.next().unwrap_or_default();
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        _ => value
            .parse()
            .map_err(|_| format!("{value:?} is not a number"))?,
    };
    if let Some(timestamp) = fields.next() {
        timestamp
            .parse::<i64>()
            .map_err(|_| format!("{timestamp:?} is not a timestamp"))?;
    }
    if fields.next().is_some() {
        return Err("text after the timestamp".into());
    }
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// A quoted label value up to its closing `"`, unescaped, and the text after the quote.
fn label_value(text: &str) -> Result<(String, &str), String> {
    let mut escaped = false;
    for (index, character) in text.char_indices() {
        match (escaped, character) {
            (false, '\\') => escaped = true,
            (false, '"') => return Ok((unescape(&text[..index], true)?, &text[index + 1..])),
            _ => escaped = false,
        }
    }
    Err("an unterminated label value".into())
}

/// `\\` and `\n` everywhere, `\"` in label values only; any other backslash is an error.
fn unescape(text: &str, label_value: bool) -> Result<String, String> {
    let mut plain = String::with_capacity(text.len());
    let mut characters = text.chars();
    while let Some(character) = characters.next() {
        if character != '\\' {
            plain.push(character);
            continue;
        }
        match characters.next() {
            Some('\\') => plain.push('\\'),
            Some('n') => plain.push('\n'),
            Some('"') if label_value => plain.push('"'),
            other => return Err(format!("a bad escape \\{other:?}")),
        }
    }
    Ok(plain)
}
