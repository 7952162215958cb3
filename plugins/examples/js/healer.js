// js-diagnose: a guard healer written in JavaScript (componentize-js).
//
// It offers the `diagnose` strategy for deterministic failures: it counts,
// in its private kv namespace, how often this failure type was seen, and
// annotates the job with the evidence and that count. Every host call goes
// through guard's grants: without `ci.annotate` the annotation is refused
// and the healer says so in its report instead of failing.

import { annotate } from 'guard:plugin/ci@0.1.2';
import { get, set } from 'guard:plugin/kv@0.1.2';
import { log } from 'guard:plugin/log@0.1.2';

const describe = (e) => (e && e.payload ? `${e.payload.tag}: ${e.payload.val}` : String(e));

export const healer = {
  info() {
    return {
      id: 'js-diagnose',
      version: '0.1.0',
      description: 'Annotates deterministic failures with their evidence and how often they recur',
    };
  },

  strategies() {
    return [
      {
        name: 'diagnose',
        categories: ['build', 'permission', 'test', 'dependency', 'other'],
        retries: false,
        description: 'Annotate the job with the diagnosis and how often it recurred; never re-run',
      },
    ];
  },

  heal(strategy, job, finding) {
    if (strategy !== 'diagnose') {
      throw { tag: 'invalid', val: `js-diagnose has no strategy ${strategy}` };
    }
    const key = `seen:${finding.failureType}`;
    const previous = get(key);
    const count = (previous ? Number(new TextDecoder().decode(previous)) : 0) + 1;
    set(key, new TextEncoder().encode(String(count)));
    log('info', `js-diagnose: ${finding.failureType} seen ${count} time(s)`);

    const actions = [];
    const title = `${finding.category} failure (${finding.failureType}), seen ${count} time(s)`;
    const body = finding.evidence.map((e) => `line ${e.line}: ${e.text}`).join('\n');
    try {
      annotate(title, body);
      actions.push('annotated the job');
    } catch (e) {
      actions.push(`annotation refused (${describe(e)})`);
    }
    return {
      summary: `js-diagnose: ${title}`,
      actions,
      effect: 'reported',
      facts: [['seen', String(count)]],
    };
  },
};
