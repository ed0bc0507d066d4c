//! Bulk loading with `COPY … FROM STDIN` in PostgreSQL's text format: one line per row, columns
//! separated by a tab, sent in chunks of about [`CHUNK_BYTES`] so that 10M rows never sit in
//! memory as one buffer. Every value written is a decimal integer, a `YYYY-MM-DD` date, or a
//! reason label that `rows::validate` checked has no control characters nor backslash — nothing
//! the text format would need escaped.

use std::fmt::Write as _;

use sqlx::postgres::{PgConnection, PgCopyIn};

/// How much is encoded before it is sent.
pub const CHUNK_BYTES: usize = 1 << 20;

/// One COPY in progress: rows are encoded into `buffer` and sent when it is full.
pub struct CopyWriter<'c> {
    copy: PgCopyIn<&'c mut PgConnection>,
    buffer: String,
}

impl<'c> CopyWriter<'c> {
    /// Starts `COPY table (columns) FROM STDIN`.
    pub async fn start(
        conn: &'c mut PgConnection,
        table: &str,
        columns: &[&str],
    ) -> Result<CopyWriter<'c>, sqlx::Error> {
        let statement = format!("COPY {table} ({}) FROM STDIN", columns.join(", "));
        let copy = conn.copy_in_raw(&statement).await?;
        Ok(CopyWriter {
            copy,
            buffer: String::with_capacity(CHUNK_BYTES + 4096),
        })
    }

    /// Appends one row: `fields` are written as they display, tab-separated.
    pub async fn row(
        &mut self,
        fields: &[&(dyn std::fmt::Display + Sync)],
    ) -> Result<(), sqlx::Error> {
        for (i, field) in fields.iter().enumerate() {
            if i > 0 {
                self.buffer.push('\t');
            }
            // Writing to a String cannot fail.
            let _ = write!(self.buffer, "{field}");
        }
        self.buffer.push('\n');
        if self.buffer.len() >= CHUNK_BYTES {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), sqlx::Error> {
        if !self.buffer.is_empty() {
            self.copy.send(self.buffer.as_bytes()).await?;
            self.buffer.clear();
        }
        Ok(())
    }

    /// Sends what is left and ends the COPY; returns the rows PostgreSQL took.
    pub async fn finish(mut self) -> Result<u64, sqlx::Error> {
        self.flush().await?;
        self.copy.finish().await
    }
}
