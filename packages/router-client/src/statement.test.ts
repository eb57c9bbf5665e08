import { describe, expect, it } from 'vitest';
import { isBegin, isCommit, isReadOnlyBegin, isTransactionControl, statementText } from './statement.js';

describe('statement helpers', () => {
  it('recognises read-only BEGINs in every spelling drivers send', () => {
    for (const sql of [
      'BEGIN READ ONLY',
      'begin read only',
      'begin transaction read only;',
      'START TRANSACTION READ ONLY',
      'start transaction isolation level serializable read only',
      'start transaction isolation level repeatable read read only',
      'BEGIN ISOLATION LEVEL READ COMMITTED, READ ONLY, DEFERRABLE',
      'BEGIN READ ONLY NOT DEFERRABLE',
      '/* c */ -- x\n BEGIN WORK READ ONLY',
    ]) {
      expect(isReadOnlyBegin(sql), sql).toBe(true);
    }
    for (const sql of [
      'BEGIN',
      'BEGIN READ WRITE',
      'BEGIN READ ONLY READ WRITE',
      'START TRANSACTION',
      'BEGIN READ ONLY; INSERT INTO t VALUES (1)',
      'SELECT 1',
      "BEGIN READ ONLY 'x'",
      'BEGIN ISOLATION LEVEL SNAPSHOT READ ONLY',
    ]) {
      expect(isReadOnlyBegin(sql), sql).toBe(false);
    }
  });

  it('tells BEGIN, COMMIT and transaction control apart from other statements', () => {
    expect(isBegin('begin')).toBe(true);
    expect(isBegin('start transaction isolation level serializable')).toBe(true);
    expect(isBegin('SELECT 1')).toBe(false);
    expect(isCommit('commit')).toBe(true);
    expect(isCommit('END')).toBe(true);
    expect(isCommit('COMMIT AND CHAIN')).toBe(false);
    expect(isCommit('COMMIT PREPARED \'x\'')).toBe(false);
    expect(isCommit('ROLLBACK')).toBe(false);
    for (const sql of ['SAVEPOINT a', 'RELEASE SAVEPOINT a', 'ROLLBACK TO SAVEPOINT a', 'SET LOCAL statement_timeout = 5', 'SET TRANSACTION READ ONLY', 'SET CONSTRAINTS ALL DEFERRED']) {
      expect(isTransactionControl(sql), sql).toBe(true);
    }
    for (const sql of ['SET search_path TO x', 'PREPARE p AS SELECT 1', 'DECLARE c CURSOR WITH HOLD FOR SELECT 1', 'LISTEN ch', 'COMMIT; SET search_path TO x']) {
      expect(isTransactionControl(sql), sql).toBe(false);
    }
    expect(statementText({ text: 'SELECT 2' })).toBe('SELECT 2');
  });
});
