//! Durable sled writes from concurrent writers: one flush per write (the
//! baseline, measured in the same run) against `GroupFlush`, printed as
//! ratios. Each write is 300 bytes, about an intake record.
//!
//! Run: `cargo bench -p refer-eventstore --bench group_flush` (add
//! `-- --quick` for a smoke run).

use refer_eventstore::GroupFlush;
use std::time::Instant;

async fn run(tree: &sled::Tree, group: Option<&GroupFlush>, writers: usize, writes: usize, tag: &str) -> f64 {
    let start = Instant::now();
    let tasks = (0..writers).map(|w| {
        let (tree, group) = (tree.clone(), group.cloned());
        let tag = format!("{tag}-{writers}");
        tokio::spawn(async move {
            for i in (w..writes).step_by(writers) {
                tree.insert(format!("{tag}-{i}"), vec![7u8; 300]).unwrap();
                match &group {
                    Some(group) => group.flush().await.unwrap(),
                    None => {
                        let tree = tree.clone();
                        tokio::task::spawn_blocking(move || tree.flush())
                            .await
                            .unwrap()
                            .unwrap();
                    }
                }
            }
        })
    });
    for task in futures::future::join_all(tasks).await {
        task.unwrap();
    }
    writes as f64 / start.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let writes = if quick { 200 } else { 3000 };
    let dir = tempfile::tempdir().unwrap();
    let tree = sled::open(dir.path()).unwrap().open_tree("records").unwrap();
    let group = GroupFlush::new(tree.clone());
    println!("| writers | one flush per write | grouped | ratio |");
    println!("|---:|---:|---:|---:|");
    for writers in [1, 16, 64] {
        let each = run(&tree, None, writers, writes, "each").await;
        let grouped = run(&tree, Some(&group), writers, writes, "grouped").await;
        println!("| {writers} | {each:.0}/s | {grouped:.0}/s | {:.2} |", grouped / each);
    }
}
