use refer_matching::scenario::Scenario;
use refer_matching::{assign, Mode};
use std::time::Instant;
fn main() {
    let instance = Scenario::regional(2).instance();
    let (catalog, free) = instance.catalog();
    let requests = instance.requests();
    let t = Instant::now();
    let mut total = 0;
    for r in &requests {
        let q = catalog.query(r.spec, &r.exclude);
        total += catalog.options(&q, instance.now, |s| free[s]).len();
    }
    println!("options {:?} avg {}", t.elapsed(), total / requests.len());
    let t = Instant::now();
    let c = assign(&catalog, &free, instance.now, &requests, Mode::Batch);
    println!(
        "assign {:?} placed {}",
        t.elapsed(),
        c.iter().filter(|c| c.is_some()).count()
    );
}
