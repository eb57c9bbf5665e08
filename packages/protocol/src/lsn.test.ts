import { describe, expect, it } from 'vitest';
import { bigIntToLsn, compareLsn, isLsn, lsnDiffBytes, lsnToBigInt } from './lsn.js';

describe('lsn', () => {
  it('parses and prints PostgreSQL LSNs', () => {
    expect(lsnToBigInt('0/3000060')).toBe(0x3000060n);
    expect(lsnToBigInt('16/B374D848')).toBe((0x16n << 32n) | 0xb374d848n);
    expect(bigIntToLsn(lsnToBigInt('16/B374D848'))).toBe('16/B374D848');
    expect(bigIntToLsn(0n)).toBe('0/0');
  });

  it('orders across the 32-bit boundary, where string comparison is wrong', () => {
    expect(compareLsn('1/0', '0/FFFFFFFF')).toBe(1);
    expect(compareLsn('0/A', '0/9')).toBe(1);
    expect(compareLsn('0/10', '0/9')).toBe(1);
    expect(compareLsn('0/9', '0/9')).toBe(0);
    expect(lsnDiffBytes('1/0', '0/FFFFFFFF')).toBe(1);
  });

  it('rejects what is not an LSN', () => {
    expect(isLsn('0/')).toBe(false);
    expect(isLsn('123')).toBe(false);
    expect(() => lsnToBigInt('x/1')).toThrow(/not a PostgreSQL LSN/);
  });
});
