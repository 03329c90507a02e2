//! Process: runs a user [`Processor`] and drives its punctuations.

use crate::processor::{Processor, ProcessorContext, Punctuation, PunctuationType, Schedule};
use crate::record::Record;
use crate::task::{Downstream, Forward, Punctuator, TaskCtx};

pub(crate) struct Process<P: Processor<K, V>, K, V> {
    pub(crate) node: std::rc::Rc<str>,
    pub(crate) processor: P,
    pub(crate) schedules: Vec<Schedule>,
    pub(crate) forward: Forward<P::KeyOut, P::ValueOut>,
    pub(crate) _t: std::marker::PhantomData<fn(K, V)>,
}

impl<P: Processor<K, V>, K, V> Process<P, K, V> {
    fn fire(&mut self, ctx: &mut TaskCtx, kind: PunctuationType) {
        let now = match kind {
            PunctuationType::StreamTime => ctx.stream_time,
            PunctuationType::WallClockTime => ctx.wall_clock,
        };
        for i in 0..self.schedules.len() {
            if self.schedules[i].kind != kind {
                continue;
            }
            if let Some(time) = self.schedules[i].due(now) {
                let mut pc = ProcessorContext { ctx, node: &self.node, forward: &self.forward };
                self.processor.punctuate(&mut pc, Punctuation { kind, schedule: i, time });
            }
        }
    }
}

impl<P: Processor<K, V>, K, V> Downstream<K, V> for Process<P, K, V> {
    fn push(&mut self, ctx: &mut TaskCtx, record: Record<K, V>) {
        let mut pc = ProcessorContext { ctx, node: &self.node, forward: &self.forward };
        self.processor.process(&mut pc, record);
    }
}

impl<P: Processor<K, V>, K, V> Punctuator for Process<P, K, V> {
    fn stream_time_advanced(&mut self, ctx: &mut TaskCtx) {
        self.fire(ctx, PunctuationType::StreamTime);
    }
    fn wall_clock_advanced(&mut self, ctx: &mut TaskCtx) {
        self.fire(ctx, PunctuationType::WallClockTime);
    }
}
