//! A queue whose items are handled in groups: what concurrent commands ask of the database
//! at the same time (appends, loads) goes in one statement instead of one each.
//!
//! A few worker tasks take what has queued, up to a limit, and handle it as one group; an
//! item that arrives while they work waits for the next group. So a lone item is handled at
//! once, and groups form only when items are concurrent: nothing waits for a timer.

use std::future::Future;
use std::sync::{Arc, OnceLock};

use tokio::sync::{mpsc, Mutex};

/// How the workers of a [`Groups`] queue form and handle groups.
pub(crate) struct GroupRules<T> {
    /// Worker tasks: while one group waits for the database, the next one is formed and
    /// sent.
    pub(crate) workers: usize,
    /// The most items in a group.
    pub(crate) max_items: usize,
    /// Whether `item` must not join a group holding `member`; it then starts the next group.
    pub(crate) apart: fn(member: &T, item: &T) -> bool,
}

/// The queue; its workers start with the first item (so inside the runtime) and end when
/// the queue is dropped.
pub(crate) struct Groups<T> {
    sender: Arc<OnceLock<mpsc::UnboundedSender<T>>>,
}

impl<T> Clone for Groups<T> {
    fn clone(&self) -> Self {
        Self {
            sender: self.sender.clone(),
        }
    }
}

impl<T> std::fmt::Debug for Groups<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Groups")
            .field("started", &self.sender.get().is_some())
            .finish()
    }
}

impl<T: Send + 'static> Groups<T> {
    pub(crate) fn new() -> Self {
        Self {
            sender: Arc::new(OnceLock::new()),
        }
    }

    /// Queues `item` for `handle`, which each worker calls with each group it takes (the
    /// first call starts the workers with these rules and this handler). Gives the item
    /// back when no worker is left to take it (their runtime shut down).
    pub(crate) fn push<H, F>(&self, item: T, rules: &GroupRules<T>, handle: H) -> Result<(), T>
    where
        H: Fn(Vec<T>) -> F + Clone + Send + Sync + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        let sender = self.sender.get_or_init(|| {
            let (sender, receiver) = mpsc::unbounded_channel();
            let queue = Arc::new(Mutex::new(Queue {
                receiver,
                carried: None,
                max_items: rules.max_items,
                apart: rules.apart,
            }));
            for _ in 0..rules.workers {
                let queue = queue.clone();
                let handle = handle.clone();
                tokio::spawn(async move {
                    loop {
                        // Only the forming of a group is exclusive; handling it is not.
                        let Some(group) = queue.lock().await.next_group().await else {
                            return;
                        };
                        handle(group).await;
                    }
                });
            }
            sender
        });
        sender
            .send(item)
            .map_err(|mpsc::error::SendError(item)| item)
    }
}

struct Queue<T> {
    receiver: mpsc::UnboundedReceiver<T>,
    /// An item taken from the queue that had to stay apart from the group being formed; it
    /// starts the next group.
    carried: Option<T>,
    max_items: usize,
    apart: fn(&T, &T) -> bool,
}

impl<T> Queue<T> {
    /// Waits for one item, then takes what else has queued; `None` when the queue is
    /// closed.
    async fn next_group(&mut self) -> Option<Vec<T>> {
        let first = match self.carried.take() {
            Some(carried) => carried,
            None => self.receiver.recv().await?,
        };
        let mut group = vec![first];
        while group.len() < self.max_items {
            let Ok(next) = self.receiver.try_recv() else {
                break;
            };
            if group.iter().any(|member| (self.apart)(member, &next)) {
                self.carried = Some(next);
                break;
            }
            group.push(next);
        }
        Some(group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::Duration;

    use tokio::sync::oneshot;

    type Item = (u32, oneshot::Sender<usize>);

    /// Answers each item with the size of the group it was handled in, after a pause that
    /// lets the next items queue.
    async fn answer_with_group_size(group: Vec<Item>) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let size = group.len();
        for (_, reply) in group {
            let _ = reply.send(size);
        }
    }

    fn rules(max_items: usize) -> GroupRules<Item> {
        GroupRules {
            workers: 1,
            max_items,
            apart: |member, item| member.0 == item.0,
        }
    }

    fn push(groups: &Groups<Item>, key: u32, rules: &GroupRules<Item>) -> oneshot::Receiver<usize> {
        let (reply, answer) = oneshot::channel();
        assert!(groups
            .push((key, reply), rules, answer_with_group_size)
            .is_ok());
        answer
    }

    #[tokio::test]
    async fn a_lone_item_is_handled_at_once_and_what_queues_meanwhile_goes_together() {
        let groups = Groups::new();
        let rules = rules(10);
        let lone = push(&groups, 0, &rules);
        tokio::time::sleep(Duration::from_millis(10)).await;
        let queued: Vec<_> = (1..=4).map(|key| push(&groups, key, &rules)).collect();
        assert_eq!(lone.await, Ok(1));
        for answer in queued {
            assert_eq!(answer.await, Ok(4));
        }
    }

    #[tokio::test]
    async fn groups_hold_at_most_the_limit_and_items_kept_apart_start_the_next_one() {
        let groups = Groups::new();
        let rules = rules(3);
        let lone = push(&groups, 0, &rules);
        tokio::time::sleep(Duration::from_millis(10)).await;
        // Queued behind the lone one: 1, 2, 3 (the limit), then 4 and 4 again (apart).
        let answers: Vec<_> = [1, 2, 3, 4, 4]
            .into_iter()
            .map(|key| push(&groups, key, &rules))
            .collect();
        assert_eq!(lone.await, Ok(1));
        let mut sizes = Vec::new();
        for answer in answers {
            sizes.push(answer.await.expect("answered"));
        }
        assert_eq!(sizes, [3, 3, 3, 1, 1]);
    }
}
