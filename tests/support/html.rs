//! The tables of a page, as a person reads them: each cell under its column's
//! heading. Enough of HTML for the pages mirrorgate writes and for the DOM
//! Chromium dumps of them (no nested tables, no cells spanning columns).

/// One `<table>`: its `id`, the text of its `<th>` cells, and the text of
/// each body row's `<td>` cells.
#[derive(Debug, Clone)]
pub struct Table {
    pub id: String,
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// The cell of `row` under the heading `header`.
    pub fn cell<'a>(&'a self, row: &'a [String], header: &str) -> Option<&'a str> {
        let col = self.headers.iter().position(|h| h.trim() == header)?;
        row.get(col).map(String::as_str)
    }

    /// The row whose cells include one equal to `text`.
    pub fn row_with(&self, text: &str) -> Option<&[String]> {
        self.rows
            .iter()
            .find(|r| r.iter().any(|c| c.trim() == text))
            .map(Vec::as_slice)
    }
}

/// Every table of `html`.
pub fn tables(html: &str) -> Vec<Table> {
    html.split("<table")
        .skip(1)
        .map(|t| {
            let t = t.split("</table>").next().unwrap_or("");
            let id = attr(t.split('>').next().unwrap_or(""), "id").unwrap_or_default();
            let headers = elements(t, "th");
            let rows = t
                .split("<tr")
                .skip(1)
                .map(|r| elements(r.split("</tr>").next().unwrap_or(""), "td"))
                .filter(|cells| !cells.is_empty())
                .collect();
            Table { id, headers, rows }
        })
        .collect()
}

/// The table of `html` with this `id`.
pub fn table(html: &str, id: &str) -> Table {
    tables(html)
        .into_iter()
        .find(|t| t.id == id)
        .unwrap_or_else(|| panic!("no table with id {id:?} in {html}"))
}

/// The `href` of every link in `html` whose text is `text`.
pub fn hrefs_of(html: &str, text: &str) -> Vec<String> {
    html.split("<a ")
        .skip(1)
        .filter_map(|a| {
            let (open, rest) = a.split_once('>')?;
            let inner = rest.split("</a>").next()?;
            (strip_tags(inner).trim() == text)
                .then(|| attr(open, "href").map(|h| unescape(&h)))
                .flatten()
        })
        .collect()
}

/// The text of every `<tag ...>...</tag>` in `html`, tags stripped.
fn elements(html: &str, tag: &str) -> Vec<String> {
    html.split(&format!("<{tag}"))
        .skip(1)
        // `<thead` and `<tbody` start with `<th` and `<t`: only `<th>` or `<th ` count.
        .filter(|e| e.starts_with('>') || e.starts_with(' '))
        .map(|e| {
            let inner = e.split_once('>').map_or("", |(_, r)| r);
            strip_tags(inner.split(&format!("</{tag}>")).next().unwrap_or(""))
        })
        .collect()
}

fn strip_tags(s: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    unescape(out.trim())
}

/// The text an HTML character reference stands for: the pages escape `'`
/// as `&#39;`, `<` as `&#60;` or `&lt;`, and so on.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let decoded = rest.find(';').and_then(|end| {
            let c = match &rest[1..end] {
                "amp" => '&',
                "lt" => '<',
                "gt" => '>',
                "quot" => '"',
                "apos" => '\'',
                "nbsp" => '\u{a0}',
                n => {
                    let n = n.strip_prefix('#')?;
                    let code = match n.strip_prefix(['x', 'X']) {
                        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                        None => n.parse().ok()?,
                    };
                    char::from_u32(code)?
                }
            };
            Some((c, end + 1))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn attr(open_tag: &str, name: &str) -> Option<String> {
    let start = open_tag.find(&format!("{name}=\""))? + name.len() + 2;
    let len = open_tag[start..].find('"')?;
    Some(open_tag[start..start + len].to_string())
}
