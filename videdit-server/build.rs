//! Embeds the web app (`web/dist`, built by `npm --prefix web run build`)
//! when it has been built; otherwise the server serves a page saying how
//! to build it. Rebuilt when the assets change.

fn main() {
    let dist = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/dist");
    println!("cargo::rustc-check-cfg=cfg(web_built)");
    println!("cargo::rerun-if-changed={}", dist.display());
    for f in ["index.html", "app.js", "app.css"] {
        println!("cargo::rerun-if-changed={}", dist.join(f).display());
    }
    if ["index.html", "app.js", "app.css"].iter().all(|f| dist.join(f).is_file()) {
        println!("cargo::rustc-cfg=web_built");
    }
}
