//! Aligned columns, as `kubectl get` prints them: left-aligned cells, two
//! spaces apart, no trailing blanks.

/// A table under construction: a header and rows of cells.
#[derive(Debug, Clone, Default)]
pub struct Columns {
    rows: Vec<Row>,
}

#[derive(Debug, Clone)]
struct Row {
    cells: Vec<String>,
    /// Text after the cells that runs past the columns without widening
    /// them (an error in place of counters).
    spill: Option<String>,
}

impl Columns {
    pub fn new(header: &[&str]) -> Self {
        Columns {
            rows: vec![Row {
                cells: header.iter().map(|h| h.to_string()).collect(),
                spill: None,
            }],
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(Row { cells, spill: None });
    }

    /// A row of `cells` followed by `text`, which does not widen the
    /// columns it runs over.
    pub fn row_spill(&mut self, cells: Vec<String>, text: String) {
        self.rows.push(Row {
            cells,
            spill: Some(text),
        });
    }

    /// The rows, each on its own line after `indent`.
    pub fn render(&self, out: &mut String, indent: &str) {
        let mut widths: Vec<usize> = Vec::new();
        for row in &self.rows {
            for (i, c) in row.cells.iter().enumerate() {
                let w = c.chars().count();
                if widths.len() <= i {
                    widths.push(w);
                } else {
                    widths[i] = widths[i].max(w);
                }
            }
        }
        for row in &self.rows {
            let mut line = String::from(indent);
            for (i, c) in row.cells.iter().enumerate() {
                line.push_str(c);
                let last = i + 1 == row.cells.len() && row.spill.is_none();
                if !last {
                    let pad = widths[i] - c.chars().count() + 2;
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            if let Some(s) = &row.spill {
                line.push_str(s);
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_align_and_a_spill_does_not_widen_its_columns() {
        let mut t = Columns::new(&["NAME", "A", "B"]);
        t.row(vec!["x".into(), "1234".into(), "5".into()]);
        t.row_spill(vec!["longer".into()], "a long message here".into());
        t.row(vec!["y".into(), "".into(), "".into()]);
        let mut out = String::new();
        t.render(&mut out, "  ");
        assert_eq!(
            out,
            "  NAME    A     B\n  \
               x       1234  5\n  \
               longer  a long message here\n  \
               y\n"
        );
    }
}
