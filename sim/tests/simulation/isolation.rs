//! The isolation rule bites: a world that, once, does something to one repository in the name
//! of another repository's release is caught at that step, as a breach of isolation.

use archgate_sim::rules::Rule;
use archgate_sim::world::Sabotage;
use archgate_sim::{run, Options};

/// Runs seeds with the sabotage until it was committed in `enough` schedules; every one of
/// them must fail on isolation, at the sabotage's step.
fn caught(sabotage: Sabotage) {
    let enough = 5;
    let mut committed = 0;
    for seed in 0..200 {
        let options = Options {
            sabotage: Some(sabotage),
            ..Options::new(seed)
        };
        match run(options) {
            Ok(summary) => assert!(
                !summary.trace.iter().any(|l| l.contains("sabotage:")),
                "seed {seed}: {sabotage:?} was committed and nothing was caught"
            ),
            Err(failure) => {
                assert_eq!(
                    failure.violation.rule,
                    Rule::Isolation,
                    "seed {seed}: {sabotage:?} was caught as another rule:\n{failure}"
                );
                let last = failure.trace.iter().rev().find(|l| l.starts_with('#'));
                assert!(
                    last.is_some_and(|l| l.contains("sabotage:")),
                    "seed {seed}: {sabotage:?} was not caught at its step:\n{failure}"
                );
                committed += 1;
                if committed == enough {
                    return;
                }
            }
        }
    }
    panic!("{sabotage:?} was committed in only {committed} schedules");
}

#[test]
fn a_release_tag_put_in_another_repository_breaks_isolation() {
    caught(Sabotage::ReleaseTagInAnother);
}

#[test]
fn a_moving_tag_moved_to_another_repositorys_release_breaks_isolation() {
    caught(Sabotage::MovingTagInAnother);
}

#[test]
fn a_moving_tag_item_naming_another_repositorys_release_breaks_isolation() {
    caught(Sabotage::MovingTagItemInAnother);
}
