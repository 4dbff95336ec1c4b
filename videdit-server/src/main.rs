//! The `videdit` binary.

fn main() -> anyhow::Result<()> {
    anyhow::bail!("videdit: no commands yet")
}
